from django.urls import re_path
from rest_framework.routers import SimpleRouter

from csplatform.api import slash_optional

from . import views

# Routes take an optional trailing slash, as seed 000's clients call them without one.
router = slash_optional(SimpleRouter())
router.register("playbooks/executions", views.PlaybookExecutionViewSet, basename="playbookexecution")
# SuccessPlays: registered after the executions (and their ids are digits only), so no clash.
router.register("playbooks", views.PlaybookViewSet, basename="playbook")

urlpatterns = [
    re_path(r"^playbook-triggers/?$", views.PlaybookTriggersView.as_view(), name="playbook-triggers"),
    re_path(r"^playbook-triggers/test/?$", views.PlaybookTriggerTestView.as_view(), name="playbook-triggers-test"),
    re_path(r"^playbook-triggers/evaluate-all/?$", views.PlaybookTriggerEvaluateAllView.as_view(),
            name="playbook-triggers-evaluate-all"),
    re_path(r"^playbook-triggers/history/?$", views.PlaybookTriggerHistoryView.as_view(),
            name="playbook-triggers-history"),
    # Before any ``playbooks/{id}`` route (SuccessPlays) so that "executions" is never taken for an id.
    *router.urls,
]
