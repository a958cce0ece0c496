"""Serializers of the customer data model; field names follow seed 004's columns."""

import copy
from datetime import timedelta
from zoneinfo import available_timezones

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers
from rest_framework.authtoken.serializers import AuthTokenSerializer

from csplatform.api import TenantModelSerializer, TenantRelatedField, TenantUserField

from ..models import (
    Account, ApiToken, AuditLog, Contact, Engagement, Goal, HealthScore, JourneyHistory, JourneyStage, Note, Opportunity,
    RiskLevel, SupportTicket, SurveyResponse, Tag, Task, Tenant, UsageMetric,
)
from ..models.health import COMPONENTS as HEALTH_COMPONENTS
from ..services import tenant_validate_health_settings

CLOCK_SKEW = timedelta(minutes=5)


class TimezoneField(serializers.ChoiceField):
    """An IANA timezone name (``Europe/Berlin``): the schema lists them, so a client sees what is accepted."""

    def __init__(self, **kwargs):
        kwargs.setdefault("error_messages", {"invalid_choice": "'{input}' is not an IANA timezone name."})
        super().__init__(choices=sorted(available_timezones()), **kwargs)


class NullSafeSource:
    """A read-only field over a dotted ``source`` (``owner.email``) that is ``null`` where the chain breaks
    (an account without owner). DRF's ``default=None`` would do, except on PATCH: partial updates drop such
    a field from the response altogether, which breaks the documented schema (found by schemathesis)."""

    def get_attribute(self, instance):
        for attr in self.source_attrs:
            instance = getattr(instance, attr, None)
            if instance is None:
                return None
        return instance


class NullSafeCharField(NullSafeSource, serializers.CharField):
    pass


class NullSafeEmailField(NullSafeSource, serializers.EmailField):
    pass


class NullSafeDecimalField(NullSafeSource, serializers.DecimalField):
    pass


class TagSerializer(TenantModelSerializer):
    class Meta:
        model = Tag
        fields = ["id", "name", "color"]


#: Where ``AccountViewSet`` puts an account's tags (``Prefetch(to_attr=...)``): a list per account, not a
#: queryset per account as a plain ``prefetch_related("tags")`` builds (a fifth of a 50-row page's time).
ACCOUNT_TAGS_ATTR = "prefetched_tags"


class AccountTagNamesField(serializers.ListField):
    """The account's tag names: the list the view prefetched, else (an account just saved) its tags."""

    def __init__(self, **kwargs):
        super().__init__(child=serializers.CharField(), read_only=True, source="*", **kwargs)

    def to_representation(self, account):
        tags = getattr(account, ACCOUNT_TAGS_ATTR, None)
        return [tag.name for tag in (tags if tags is not None else account.tags.all())]


class AccountSerializer(TenantModelSerializer):
    parent = TenantRelatedField(Account, required=False, allow_null=True)
    owner = TenantUserField(required=False, allow_null=True)
    tags = AccountTagNamesField()
    tag_ids = TenantRelatedField(Tag, many=True, required=False, write_only=True, source="tags")
    current_stage = NullSafeCharField(source="current_stage.name", read_only=True, allow_null=True)
    owner_email = NullSafeEmailField(source="owner.email", read_only=True, allow_null=True)
    # "" until the first health score is recorded
    risk_level = serializers.ChoiceField(choices=RiskLevel.choices, read_only=True, allow_blank=True)
    health_trend = NullSafeDecimalField(max_digits=6, decimal_places=2, read_only=True, allow_null=True,
                                        help_text="Change of the health score over the last 30 days.")

    class Meta:
        model = Account
        fields = [
            "id", "name", "parent", "status", "industry", "size", "employee_count", "arr", "licensed_seats",
            "renewal_date", "owner", "owner_email", "tags", "tag_ids", "current_stage", "health_score",
            "risk_level", "health_trend", "created_at", "updated_at",
        ]


@extend_schema_field({"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?$",
                      "example": "22:00"})
class WallClockTimeField(serializers.TimeField):
    """A time of day on the contact's own clock, without a UTC offset. OpenAPI's ``format: time`` means
    RFC 3339 ``full-time``, which requires an offset, so the schema says what is really sent and accepted."""


class ContactSerializer(TenantModelSerializer):
    account = TenantRelatedField(Account)
    quiet_hours_start = WallClockTimeField(required=False, allow_null=True)
    quiet_hours_end = WallClockTimeField(required=False, allow_null=True)
    timezone = TimezoneField(required=False, allow_blank=True, help_text="IANA name; blank: the tenant's.")
    tags = serializers.SlugRelatedField(many=True, slug_field="name", read_only=True)
    tag_ids = TenantRelatedField(Tag, many=True, required=False, write_only=True, source="tags")

    class Meta:
        model = Contact
        fields = [
            "id", "account", "name", "email", "phone", "role", "is_primary", "timezone", "quiet_hours_start",
            "quiet_hours_end", "email_opt_out", "telegram_chat_id", "source", "status", "engagement_score", "tags",
            "tag_ids",
            "created_at", "updated_at",
        ]


class JourneyStageSerializer(TenantModelSerializer):
    class Meta:
        model = JourneyStage
        fields = ["id", "name", "order", "description"]


class JourneyHistorySerializer(serializers.ModelSerializer):
    stage = serializers.CharField(source="stage.name", read_only=True)
    from_stage = NullSafeCharField(source="from_stage.name", read_only=True, allow_null=True)
    duration_days = serializers.FloatField(read_only=True, allow_null=True, help_text="Empty while the stay is open.")

    class Meta:
        model = JourneyHistory
        fields = ["id", "account", "stage", "from_stage", "entered_at", "exited_at", "duration_days", "reason"]
        read_only_fields = fields


class MoveStageSerializer(serializers.Serializer):
    stage = serializers.CharField(help_text="The stage's id or name, e.g. 'At Risk'.")
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=255)

    def validate_stage(self, value):
        stages = JourneyStage.objects.for_tenant(self.context["tenant"])
        stage = None
        if value.isascii() and value.isdigit():
            stage = stages.filter(pk=int(value)).first()
        stage = stage or stages.filter(name__iexact=value.strip()).first()
        if stage is None:
            raise serializers.ValidationError(f"No journey stage '{value}' in this tenant.")
        return stage


class HealthScoreSerializer(TenantModelSerializer):
    account = TenantRelatedField(Account)
    account_name = serializers.CharField(source="account.name", read_only=True)

    class Meta:
        model = HealthScore
        fields = [
            "id", "account", "account_name", "usage_score", "engagement_score", "support_sentiment_score",
            "adoption_score", "overall_score", "previous_score", "risk_level", "breakdown", "adjustment",
            "adjustment_reason", "adjustment_expires_at", "calculated_at",
        ]
        read_only_fields = ["overall_score", "previous_score", "risk_level", "breakdown", "adjustment",
                            "adjustment_reason", "adjustment_expires_at"]
        extra_kwargs = {"calculated_at": {"required": False}}

    @staticmethod
    def openapi_request_constraints(partial: bool) -> dict:
        # At least one component (the tenant's weight of it must not be 0, which no schema can say).
        return {"anyOf": [{"required": [name], "properties": {name: {"not": {"type": "null"}}}}
                          for name in HEALTH_COMPONENTS]}

    def validate_calculated_at(self, value):
        # A score dated in the future would stay "the latest" and hide every score recorded until then.
        if value is not None and value > timezone.now() + CLOCK_SKEW:
            raise serializers.ValidationError("A health score cannot be dated in the future.")
        return value


class UsageMetricSerializer(TenantModelSerializer):
    account = TenantRelatedField(Account)
    features_used = serializers.ListField(child=serializers.CharField(max_length=100), required=False)

    class Meta:
        model = UsageMetric
        fields = [
            "id", "account", "date", "active_users", "logins", "dau", "mau", "session_minutes", "features_used",
        ]
        validators = []  # the (account, date) uniqueness is checked in validate() with a clear message

    def validate(self, attrs):
        account = attrs.get("account", getattr(self.instance, "account", None))
        date = attrs.get("date", getattr(self.instance, "date", None))
        clash = UsageMetric.objects.filter(account=account, date=date)
        if self.instance is not None:
            clash = clash.exclude(pk=self.instance.pk)
        if clash.exists():
            raise serializers.ValidationError({"date": "This account already has usage metrics for this date."})
        return super().validate(attrs)


class OfItsAccountMixin:
    """The rows a record names in ``of_its_account`` (a survey's contact, an engagement's deal) belong to the
    record's own account, not to some other account."""

    of_its_account: tuple[str, ...] = ()

    def validate(self, attrs):
        account = attrs.get("account", getattr(self.instance, "account", None))
        for name in self.of_its_account:
            if name not in attrs and "account" not in attrs:
                continue
            row = attrs.get(name, getattr(self.instance, name, None))
            if row is not None and account is not None and row.account_id != account.pk:
                raise serializers.ValidationError({name: f"The {name} must belong to the account."})
        return super().validate(attrs)


class ContactOfAccountMixin(OfItsAccountMixin):
    """A survey, ticket or engagement names a contact of its own account."""

    of_its_account = ("contact",)


class SurveyResponseSerializer(ContactOfAccountMixin, TenantModelSerializer):
    """A survey answer; ``score`` is on the scale of its ``kind``: NPS 0-10, CSAT 1-5 (a PATCH of one of them is
    checked against the stored other)."""

    account = TenantRelatedField(Account)
    contact = TenantRelatedField(Contact, required=False, allow_null=True)

    class Meta:
        model = SurveyResponse
        fields = ["id", "account", "contact", "kind", "score", "comment", "responded_at"]
        extra_kwargs = {"score": {"min_value": 0, "max_value": max(high for _, high in SurveyResponse.SCALES.values())}}

    @staticmethod
    def openapi_request_constraints(partial: bool) -> dict:
        if partial:
            return {}
        # a pattern, not an enum: drf-spectacular would make a one-value enum the kind's whole enum component
        return {"oneOf": [{"properties": {"kind": {"pattern": f"^{kind}$"}, "score": {"minimum": low, "maximum": high}}}
                          for kind, (low, high) in SurveyResponse.SCALES.items()]}


class SupportTicketSerializer(ContactOfAccountMixin, TenantModelSerializer):
    account = TenantRelatedField(Account)
    contact = TenantRelatedField(Contact, required=False, allow_null=True)

    class Meta:
        model = SupportTicket
        fields = [
            "id", "account", "contact", "subject", "description", "priority", "status", "opened_at",
            "first_response_at", "resolved_at", "csat",
        ]
        extra_kwargs = {"csat": {"min_value": 1, "max_value": 5},
                        "first_response_at": {"help_text": "Not before opened_at."},
                        "resolved_at": {"help_text": "Not before opened_at."}}


class EngagementSerializer(OfItsAccountMixin, TenantModelSerializer):
    of_its_account = ("contact", "opportunity")
    account = TenantRelatedField(Account)
    contact = TenantRelatedField(Contact, required=False, allow_null=True)
    opportunity = TenantRelatedField(Opportunity, required=False, allow_null=True)
    user = TenantUserField(required=False, allow_null=True)

    class Meta:
        model = Engagement
        fields = ["id", "account", "contact", "opportunity", "user", "kind", "outcome", "occurred_at", "summary"]


class GoalSerializer(TenantModelSerializer):
    account = TenantRelatedField(Account)

    class Meta:
        model = Goal
        fields = [
            "id", "account", "title", "goal_type", "description", "status", "target_date", "achieved_at",
            "created_at", "updated_at",
        ]


class TaskSerializer(TenantModelSerializer):
    account = TenantRelatedField(Account, required=False, allow_null=True)
    assignee = TenantUserField(required=False, allow_null=True)

    class Meta:
        model = Task
        fields = [
            "id", "account", "title", "description", "assignee", "due_date", "priority", "status", "source",
            "completed_at", "created_at", "updated_at",
        ]
        read_only_fields = ["source", "completed_at"]

    def validate(self, attrs):
        attrs = super().validate(attrs)
        # completed_at is the server's record of when the task was done: set on DONE, cleared on reopen
        if "status" in attrs:
            if attrs["status"] != Task.Status.DONE:
                attrs["completed_at"] = None
            elif getattr(self.instance, "completed_at", None) is None:
                attrs["completed_at"] = timezone.now()
        return attrs


class NoteSerializer(OfItsAccountMixin, TenantModelSerializer):
    of_its_account = ("opportunity",)
    account = TenantRelatedField(Account)
    opportunity = TenantRelatedField(Opportunity, required=False, allow_null=True)
    author = NullSafeEmailField(source="author.email", read_only=True, allow_null=True)

    class Meta:
        model = Note
        fields = ["id", "account", "opportunity", "author", "body", "pinned", "created_at", "updated_at"]


class TenantSettingsSerializer(serializers.ModelSerializer):
    timezone = TimezoneField(required=False)

    class Meta:
        model = Tenant
        fields = [
            "id", "slug", "number", "name", "timezone", "weight_usage", "weight_engagement", "weight_support",
            "weight_adoption", "band_healthy", "band_moderate", "band_at_risk",
        ]
        read_only_fields = ["id", "slug", "number"]

    def validate(self, attrs):
        candidate = copy.copy(self.instance)
        for name, value in attrs.items():
            setattr(candidate, name, value)
        try:
            tenant_validate_health_settings(candidate)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict)
        return attrs


class AuditLogSerializer(serializers.ModelSerializer):
    changes = serializers.DictField(
        child=serializers.ListField(child=serializers.JSONField(), min_length=2, max_length=2),
        read_only=True, help_text="{field: [before, after]}; secrets are masked as \"***\".",
    )

    class Meta:
        model = AuditLog
        fields = [
            "id", "created_at", "actor", "actor_email", "action", "object_type", "object_id", "object_repr", "changes",
        ]
        read_only_fields = fields


class OpportunitySerializer(TenantModelSerializer):
    """A renewal, expansion or new-business opportunity (seed 003's Deal)."""

    account = TenantRelatedField(Account)
    owner = TenantUserField(required=False, allow_null=True)

    class Meta:
        model = Opportunity
        fields = ["id", "account", "name", "kind", "stage", "value", "currency", "close_date", "probability",
                  "last_activity_date", "risk_level", "owner", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]


# --- API tokens ------------------------------------------------------------------------------------

@extend_schema_serializer(component_name="AuthToken")  # the login's documented names stay DRF's
class LoginSerializer(AuthTokenSerializer):
    """DRF's login form (``username`` = the email, ``password``) and an optional label; the answer is a new key,
    shown this once, and when it expires."""

    name = serializers.CharField(write_only=True, required=False, allow_blank=True,
                                 max_length=ApiToken._meta.get_field("name").max_length,
                                 help_text="A label for the new token (what or who uses it).")
    expires_at = serializers.DateTimeField(read_only=True, allow_null=True)


class ApiTokenSerializer(serializers.ModelSerializer):
    """One of the caller's tokens: never its key (only the first characters, ``prefix``)."""

    state = serializers.ChoiceField(choices=ApiToken.State.choices, read_only=True)
    current = serializers.SerializerMethodField(help_text="Whether this request was made with this token.")

    class Meta:
        model = ApiToken
        fields = ["id", "prefix", "name", "created_at", "expires_at", "last_used_at", "revoked_at", "state",
                  "current"]
        read_only_fields = fields

    def get_current(self, obj) -> bool:
        auth = self.context["request"].auth
        return isinstance(auth, ApiToken) and auth.pk == obj.pk


class TokenRevokeSerializer(serializers.Serializer):
    all = serializers.BooleanField(default=False, help_text="Revoke every token of the caller, not only the "
                                                            "one this request was made with.")
