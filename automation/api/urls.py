from django.urls import re_path
from rest_framework.routers import SimpleRouter

from csplatform.api import slash_optional

from . import views
from .webhooks import InboundWebhookView

# SimpleRouter: accounts.api already serves the browsable API root at /api/.
router = slash_optional(SimpleRouter())
router.register("admin/automation", views.WorkflowViewSet, basename="automation-workflow")
router.register("event-triggers", views.EventTriggerViewSet, basename="event-trigger")

urlpatterns = [
    re_path(r"^hooks/(?P<token>[^/]+)/?$", InboundWebhookView.as_view(), name="automation-webhook"),
    *router.urls,
]
