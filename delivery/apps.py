from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "delivery"

    def ready(self):
        from . import tasks, transports  # noqa: F401  (celery tasks; the transport registry fills itself)
