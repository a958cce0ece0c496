from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "delivery"

    def ready(self):
        from csplatform.metrics import register_collector  # ready(): models are loaded

        from . import demo, engagement_signal, tasks, transports  # noqa: F401  (tasks; transports; receivers)
        from . import cockpit  # noqa: F401  (its part of the CSM cockpit: accounts.cockpit.sources)
        from .metrics import OutboxCollector  # ready(): models are loaded

        register_collector(OutboxCollector())
