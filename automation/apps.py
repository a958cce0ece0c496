from django.apps import AppConfig


class AutomationConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "automation"

    def ready(self):
        from . import delivery, signals  # noqa: F401  (receivers; delivery registers its transports/tasks)
        from . import health_adjustments  # noqa: F401  (temporary score adjustments expire: due work + beat)
