"""The admin app with the cockpit as its site (``INSTALLED_APPS`` names ``CockpitAdminConfig`` instead of
``django.contrib.admin``). Loaded with the settings, so nothing here imports models."""

from django.contrib.admin.apps import AdminConfig


class CockpitAdminConfig(AdminConfig):
    default_site = "accounts.cockpit.site.CockpitAdminSite"
