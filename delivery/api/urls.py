from rest_framework.routers import SimpleRouter

from csplatform.api import slash_optional

from . import views

# SimpleRouter: accounts.api already serves the browsable API root at /api/.
router = slash_optional(SimpleRouter())
router.register("outbox", views.OutboxViewSet, basename="outbox")
router.register("email-templates", views.EmailTemplateViewSet, basename="email-template")
router.register("webhook-secrets", views.WebhookSecretViewSet, basename="webhook-secret")
router.register("integration-credentials", views.IntegrationCredentialViewSet, basename="integration-credential")

urlpatterns = router.urls
