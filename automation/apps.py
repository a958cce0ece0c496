from django.apps import AppConfig


class AutomationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "automation"

    def ready(self):
        from . import payloads, signals, tasks  # noqa: F401  (receivers; tasks registers the celery tasks)
        from . import health_adjustments, outbox_pass  # noqa: F401  (due work + beat entries)
