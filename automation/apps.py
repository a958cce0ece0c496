from django.apps import AppConfig


class AutomationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "automation"

    def ready(self):
        from csplatform.metrics import register_collector  # ready(): models are loaded

        from . import payloads, signals, tasks  # noqa: F401  (receivers; tasks registers the celery tasks)
        from . import cockpit  # noqa: F401  (its part of the CSM cockpit: accounts.cockpit.sources)
        from . import health_adjustments, heartbeat, outbox_pass, retention  # noqa: F401  (due work + beat entries)
        from .metrics import AutomationCollector  # ready(): models are loaded

        register_collector(AutomationCollector())
