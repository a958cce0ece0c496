"""The Django admin a customer success manager works in, scoped by tenant (``csplatform.admin_base``).

Writes with business rules go through ``accounts.services`` (account hierarchy and status, health
scores, journey moves, goals, tenant creation, memberships), exactly as the API does, so the domain
signals fire and computed fields stay right.
"""
from django.contrib import admin
from django.urls import reverse_lazy

from . import customers, health, tenants, tokens, work  # noqa: F401  (each registers its admins)

admin.site.site_header = "Customer Success Platform"
admin.site.site_title = "Customer Success Platform"
admin.site.index_title = "Customer success"
# "View site" leads to the CSMs' home, the cockpit: the platform has no public site at "/".
admin.site.site_url = reverse_lazy("admin:index")
