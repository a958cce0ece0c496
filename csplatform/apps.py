from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.db.models.signals import post_migrate


class CSPlatformConfig(AppConfig):
    name = "csplatform"
    verbose_name = "Platform"

    def ready(self):
        from . import rls, tenancy  # ready(): rls reads the models of every app

        connection_created.connect(tenancy.on_connection_created, dispatch_uid="csplatform.rls.connection")
        post_migrate.connect(rls.on_post_migrate, dispatch_uid="csplatform.rls.post_migrate")
