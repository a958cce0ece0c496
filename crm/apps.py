from django.apps import AppConfig


class CrmConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "crm"
    verbose_name = "CRM retention journeys"

    def ready(self):
        from . import signals  # noqa: F401  (receivers of accounts' domain signals)

        self._register_action()
        self._register_schedules()

    @staticmethod
    def _register_action() -> None:
        """``add_to_cadence`` (seed 003) starts a CRM journey: crm registers it into automation's registry."""
        from automation.actions import actions

        from .actions import AddToCadence

        actions.register(AddToCadence.type)(AddToCadence())

    @staticmethod
    def _register_schedules() -> None:
        try:
            from automation.scheduling import register_due_work
        except ImportError:  # pragma: no cover - the beat task and the command still work
            register_due_work = None
        if register_due_work is not None:
            from .scheduler import execute_pending_steps
            from .triggers import daily_scan

            register_due_work("crm.execute_pending_steps")(lambda *, now: execute_pending_steps(now=now))
            register_due_work("crm.daily_triggers")(lambda *, now: daily_scan(now=now))
        try:
            from automation.periodic import register_periodic_task
        except ImportError:  # pragma: no cover
            return
        register_periodic_task(
            "crm: execute pending journey steps", "crm.tasks.execute_pending_steps_task", cron_minute="*",
            description="Sends every due CRM journey step (quiet hours, discount codes, owner notifications).")
        register_periodic_task(
            "crm: daily journey triggers", "crm.tasks.daily_triggers_task", cron_minute="*/15",
            description="Trial ending (3 days before) and inactivity (14 days without login); each tenant "
                        "is scanned once a day, the 15-minute cadence only retries after an outage.")
