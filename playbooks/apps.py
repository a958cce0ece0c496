from django.apps import AppConfig


class PlaybooksConfig(AppConfig):
    default_auto_field = 'django.db.models.BigAutoField'
    name = 'playbooks'

    def ready(self):
        from . import engine_hooks, signals  # noqa: F401  (receivers: tenant defaults, demo); ready(): app registry loaded
        from . import cockpit  # noqa: F401  (its part of the CSM cockpit: accounts.cockpit.sources)

        engine_hooks.register()  # the playbook_trigger trigger and the record_playbook_execution action
        self._register_schedule()
        self._register_rule_owner()

    @staticmethod
    def _register_rule_owner() -> None:
        """A play's rule is compiled from the play: the generic rule API and admin must not edit it."""
        from automation.managed import Owner, register_owner  # ready(): app registry loaded
        from django.db.models import OuterRef, Subquery

        from .models import Playbook  # ready(): app registry loaded
        from .services import PLAYBOOK_SOURCE  # ready(): app registry loaded

        def columns(tenant_id):  # (id, name) of the play keeping the rule OuterRef("pk")
            keeping = Playbook.objects.for_tenant(tenant_id).filter(workflow_id=OuterRef("pk")).order_by("pk")
            return Subquery(keeping.values("pk")[:1]), Subquery(keeping.values("name")[:1])

        register_owner(Owner(source=PLAYBOOK_SOURCE, kind="SuccessPlay", columns=columns,
                             api_path="/api/playbooks/{id}", admin_url_name="admin:playbooks_playbook_change"))

    @staticmethod
    def _register_schedule() -> None:
        from automation.periodic import register_periodic_task  # ready(): app registry loaded
        from automation.scheduling import register_due_work  # ready(): app registry loaded

        from .scheduling import evaluate_due_tenants  # ready(): app registry loaded

        register_due_work("playbooks.daily_evaluation")(lambda *, now: evaluate_due_tenants(now=now))
        register_periodic_task(
            "playbooks: daily trigger evaluation", "playbooks.tasks.evaluate_due_tenants_task", cron_minute="*/5",
            description="Evaluate-all for every tenant once a day at its PlaybookSchedule time (default 06:00 "
                        "in the tenant's timezone); the 5-minute cadence only looks for tenants that are due.")
