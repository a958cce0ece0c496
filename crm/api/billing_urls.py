"""``/api/billing/``: billing events (``crm.api.billing``) and the tenants' Stripe webhooks (``crm.api.stripe``)."""

from django.urls import re_path
from rest_framework.routers import DefaultRouter

from csplatform.api import slash_optional

from . import billing, stripe

router = slash_optional(DefaultRouter())
router.include_root_view = False
router.register("events", billing.BillingEventViewSet, basename="billing-event")

urlpatterns = [
    re_path(r"^stripe/endpoint/?$", billing.StripeEndpointView.as_view(), name="billing-stripe-endpoint"),
    re_path(r"^stripe/(?P<token>[^/]+)/?$", stripe.StripeWebhookView.as_view(), name="billing-stripe-webhook"),
    *router.urls,
]
