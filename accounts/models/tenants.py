"""Tenants, memberships and roles."""

import uuid
from decimal import Decimal

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Role(models.TextChoices):
    TENANT_ADMIN = "tenant_admin", "Tenant Admin"
    PRACTITIONER = "practitioner", "Practitioner"
    CONTRIBUTOR = "contributor", "Contributor"
    VIEWER = "viewer", "Viewer"


_weight = [MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))]
_band = [MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))]


class Tenant(models.Model):
    """An organisation using the platform. Health score weights and risk bands are per tenant."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    slug = models.SlugField(max_length=63, unique=True)
    # Seed 000 names a tenant by a small integer (``X-Customer-ID: 1``): given in order of creation.
    number = models.PositiveIntegerField(unique=True, editable=False, help_text="Seed 000's customer id.")
    name = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64, default="UTC")

    # Seed 004's formula: usage 35 %, engagement 25 %, support 20 %, adoption 20 %.
    weight_usage = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("35"), validators=_weight)
    weight_engagement = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("25"), validators=_weight)
    weight_support = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("20"), validators=_weight)
    weight_adoption = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("20"), validators=_weight)
    # Lower bounds of the risk bands: Healthy >= 80, Moderate >= 60, At Risk >= 40, else Critical.
    band_healthy = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("80"), validators=_band)
    band_moderate = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("60"), validators=_band)
    band_at_risk = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("40"), validators=_band)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def save(self, *args, **kwargs):
        if self.number is None:  # the next number; the unique constraint refuses a concurrent twin
            self.number = (Tenant.objects.aggregate(top=models.Max("number"))["top"] or 0) + 1
        super().save(*args, **kwargs)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def health_weights(self) -> dict[str, Decimal]:
        return {
            "usage_score": self.weight_usage,
            "engagement_score": self.weight_engagement,
            "support_sentiment_score": self.weight_support,
            "adoption_score": self.weight_adoption,
        }


class Membership(models.Model):
    """A user's role in one tenant; a user may belong to several tenants."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [models.UniqueConstraint(fields=["user", "tenant"], name="membership_unique_user_tenant")]

    def __str__(self) -> str:
        return f"{self.user} @ {self.tenant} ({self.get_role_display()})"
