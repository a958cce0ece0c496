from django.urls import re_path
from rest_framework.routers import SimpleRouter

from csplatform.api import slash_optional

from . import engagement, views

# SimpleRouter: accounts.api already serves the browsable API root at /api/.
router = slash_optional(SimpleRouter())
router.register("outbox", views.OutboxViewSet, basename="outbox")
router.register("email-templates", views.EmailTemplateViewSet, basename="email-template")
router.register("webhook-secrets", views.WebhookSecretViewSet, basename="webhook-secret")
router.register("integration-credentials", views.IntegrationCredentialViewSet, basename="integration-credential")
router.register("email-events", engagement.EmailEventViewSet, basename="email-event")
router.register("suppressions", engagement.SuppressionViewSet, basename="suppression")

urlpatterns = [
    *router.urls,
    re_path(r"^email-feedback/?$", engagement.FeedbackEndpointView.as_view(), name="email-feedback"),
    re_path(r"^email-feedback/rotate/?$", engagement.FeedbackEndpointRotateView.as_view(),
            name="email-feedback-rotate"),
    re_path(r"^email-feedback/hooks/(?P<token>[^/]+)/?$", engagement.InboundFeedbackView.as_view(),
            name="email-feedback-generic"),
    re_path(r"^email-feedback/hooks/(?P<token>[^/]+)/mailgun/?$", engagement.MailgunFeedbackView.as_view(),
            name="email-feedback-mailgun"),
]
