"""The admin site whose home is the CSM cockpit: the usual app list moves to a side column."""

from django.contrib import admin

from .views import home_context


class CockpitAdminSite(admin.AdminSite):
    index_template = "admin/cockpit/home.html"

    def index(self, request, extra_context=None):
        return super().index(request, {**home_context(request), **(extra_context or {})})
