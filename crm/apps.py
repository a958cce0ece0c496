from django.apps import AppConfig


class CrmConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "crm"
    verbose_name = "CRM retention journeys"

    def ready(self):
        # Imported here, not at the top: these modules import models, which exist once the app registry is ready.
        from automation.actions import actions  # models: see above
        from automation.periodic import register_periodic_task  # models: see above
        from automation.scheduling import register_due_work  # models: see above
        from delivery.ab_results import register_conversions  # models: see above

        from . import rules, signals, tasks  # noqa: F401  (models: see above; signals connects the receivers)
        from . import cockpit  # noqa: F401  (models: see above; its part of the CSM cockpit)
        from .actions import AddToCadence, ConvertCadence  # models: see above
        from csplatform.metrics import register_collector  # models: see above

        from .metrics import JourneyCollector  # models: see above
        from .reports import converted_messages  # models: see above
        from .scheduler import execute_pending_steps  # models: see above
        from .triggers import daily_scan  # models: see above

        # crm's actions, its rules' owner and its due work, registered into automation (which never imports crm).
        for action in (AddToCadence, ConvertCadence):
            actions.register(action.type)(action())
        rules.register()
        register_conversions(converted_messages)
        register_collector(JourneyCollector())
        register_due_work("crm.execute_pending_steps")(lambda *, now: execute_pending_steps(now=now))
        register_due_work("crm.daily_triggers")(lambda *, now: daily_scan(now=now))
        register_periodic_task(
            "crm: execute pending journey steps", "crm.tasks.execute_pending_steps_task", cron_minute="*",
            description="Sends every due CRM journey step (quiet hours, discount codes, owner notifications).")
        register_periodic_task(
            "crm: daily journey triggers", "crm.tasks.daily_triggers_task", cron_minute="*/15",
            description="Trial ending (3 days before) and inactivity (14 days without login) events; each tenant "
                        "is scanned once a day, the 15-minute cadence only retries after an outage.")
