"""Priority lanes (csplatform/settings.py ``CELERY_TASK_ROUTES``, docs/operations.md): every task of the project
goes to the lane it was meant for; none lands on ``default`` because nobody routed it."""

from celery.app import routes as celery_routes
from django.conf import settings

from automation.periodic import periodic_specs
from csplatform.celery import app

LANES = {"events", "delivery", "bulk", "default"}
PROJECT = ("accounts", "automation", "delivery", "playbooks", "crm", "csplatform")


def project_tasks() -> dict[str, str]:
    """Every registered task that the project defines (celery's own ``celery.*`` ones aside): name -> module."""
    app.loader.import_default_modules()  # each app's tasks module, as a worker imports them
    found = {name: task.run.__module__ for name, task in app.tasks.items() if not name.startswith("celery.")}
    assert all(module.split(".")[0] in PROJECT for module in found.values()), found
    return found


def queue_of(name: str) -> str:
    """Where celery's own router sends the task, with the settings' routes (not a re-reading of the dict)."""
    router = celery_routes.Router(celery_routes.prepare(settings.CELERY_TASK_ROUTES), app.amqp.Queues(()),
                                  create_missing=True, app=app)
    return router.route({}, name)["queue"].name


def test_it_routes_every_task_of_the_project_to_a_lane_by_name():
    unrouted = sorted(set(project_tasks()) - set(settings.CELERY_TASK_ROUTES))
    assert not unrouted, f"add these tasks to CELERY_TASK_ROUTES with their lane: {unrouted}"


def test_it_routes_only_to_the_four_lanes_and_only_tasks_that_exist():
    assert {route["queue"] for route in settings.CELERY_TASK_ROUTES.values()} <= LANES
    stale = sorted(set(settings.CELERY_TASK_ROUTES) - set(project_tasks()))
    assert not stale, f"routes for tasks that no longer exist: {stale}"
    assert settings.CELERY_TASK_DEFAULT_QUEUE == "default"


def test_it_sends_the_hot_path_to_its_own_lanes_and_work_over_many_accounts_to_bulk():
    assert queue_of("automation.tasks.process_event") == "events"
    assert queue_of("automation.delivery.deliver_messages") == "delivery"
    assert queue_of("automation.delivery.deliver_outbox") == "delivery"
    for bulk in ("playbooks.tasks.evaluate_due_tenants_task", "automation.tasks.run_scheduled_rules_task",
                 "crm.tasks.daily_triggers_task", "crm.tasks.execute_pending_steps_task"):
        assert queue_of(bulk) == "bulk", bulk
    assert queue_of("celery.chord_unlock") == "default"  # celery's own tasks: the default lane


def test_it_gives_bulk_tasks_minutes_and_keeps_the_short_limits_on_the_other_lanes():
    app.loader.import_default_modules()
    evaluate = app.tasks["playbooks.tasks.evaluate_due_tenants_task"]
    process = app.tasks["automation.tasks.process_event"]
    assert (evaluate.soft_time_limit, evaluate.time_limit) == (1500, 1800)
    assert (process.soft_time_limit, process.time_limit) == (60, 120)


def test_every_periodic_task_beat_sends_is_a_routed_task():
    tasks = project_tasks()
    for spec in periodic_specs():
        assert spec.task in tasks and spec.task in settings.CELERY_TASK_ROUTES, spec.name
