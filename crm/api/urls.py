from django.urls import re_path
from rest_framework.routers import DefaultRouter

from csplatform.api import slash_optional

from . import views

# Seed 002's paths have no trailing slash; both forms are served (DRF's constructor only knows "/" or "").
router = slash_optional(DefaultRouter())
router.include_root_view = False
router.register("playbooks", views.PlaybookViewSet, basename="crm-playbook")
router.register("executions", views.ExecutionViewSet, basename="crm-execution")
router.register("discount-codes", views.DiscountCodeViewSet, basename="crm-discount-code")

urlpatterns = [
    re_path(r"^stats/?$", views.StatsView.as_view(), name="crm-stats"),
    *router.urls,
]
