from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from delivery.views import click_view, open_pixel_view, unsubscribe_view

urlpatterns = [
    path(settings.ADMIN_URL, admin.site.urls),
    path("api/", include("accounts.api.urls")),
    path("api/", include("delivery.api.urls")),
    path("api/", include("automation.api.urls")),
    path("api/", include("playbooks.api.urls")),
    path("api/v1/crm/", include("crm.api.urls")),
    path("api/billing/", include("crm.api.billing_urls")),
    path("api/unsubscribe/<str:token>/", unsubscribe_view, name="unsubscribe"),
    path("t/o/<str:token>.gif", open_pixel_view, name="email-open"),
    path("t/c/<str:token>/", click_view, name="email-click"),
    path("api/auth/", include("rest_framework.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema", template_name="api/redoc.html"), name="redoc"),
    path("metrics", include("csplatform.metrics")),
    path("", include("csplatform.health")),
]

# A request Django refuses before any view (e.g. a body over DATA_UPLOAD_MAX_MEMORY_SIZE): JSON for the API.
handler400 = "csplatform.json_input.bad_request"
# A URL no route matches (``/api/playbooks/x/trigger/``): a JSON 404 on the API, as the schema documents.
handler404 = "csplatform.json_input.not_found"
