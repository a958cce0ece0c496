from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "delivery"

    def ready(self):
        from . import demo, engagement_signal, tasks, transports  # noqa: F401  (tasks; transports; receivers)
