from django.apps import AppConfig


class AccountsConfig(AppConfig):
    default_auto_field = 'django.db.models.BigAutoField'
    name = 'accounts'

    def ready(self):
        from . import engagement  # noqa: F401  (connects its receivers; models are loaded only now)
        from .cockpit import own  # noqa: F401  (registers the accounts' cockpit source; models are loaded only now)
