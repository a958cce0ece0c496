"""Runs as the rule APIs show them, the requests that start a rule by hand (execute, test) and their answers."""

from __future__ import annotations

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import Account
from automation.delivery_outcomes import DELIVERY_FAILED, STATES, Deliveries
from automation.models import Run, RunStep, Workflow
from csplatform.api import TenantRelatedField


def shown_deliveries(field, tenant_id, run_id) -> Deliveries:
    """The delivery state of what an answer shows: one outbox query for all of it (a page of runs or
    executions, or one), kept on the root serializer. The root names the run of each object it shows with
    ``run_id_of``; shown some other way, a run is read on its own."""
    root = field.root
    found = getattr(root, "_deliveries", None)
    if found is None or run_id not in found.run_ids:
        many = isinstance(root, serializers.ListSerializer)
        run_id_of = getattr(root.child if many else root, "run_id_of", None)
        shown = root.instance if many else [root.instance]
        ids = [run_id_of(obj) for obj in shown] if run_id_of and isinstance(shown, (list, tuple, QuerySet)) else []
        found = root._deliveries = Deliveries(tenant_id, ids if run_id in ids else [run_id])
    return found


class StepDeliverySerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=STATES, help_text="The worst state of the step's messages.")
    messages = serializers.IntegerField(help_text="How many outbox messages the step wrote.")
    error = serializers.CharField(help_text="The last error of that message (blank once delivered).")
    attempts = serializers.IntegerField()
    max_attempts = serializers.IntegerField()
    last_status_code = serializers.IntegerField(allow_null=True)
    next_attempt_at = serializers.DateTimeField(allow_null=True, help_text="When it is retried (retrying only).")
    delivered_at = serializers.DateTimeField(allow_null=True)


class RunStepSerializer(serializers.ModelSerializer):
    delivery = serializers.SerializerMethodField(help_text=(
        "What became of the outbox messages this step wrote: queued, retrying (with the last error), delivered "
        "or dead; null when it wrote none."))

    class Meta:
        model = RunStep
        fields = ["position", "action_type", "status", "attempts", "output", "error", "duration_ms", "created_at",
                  "delivery"]

    @extend_schema_field(StepDeliverySerializer(allow_null=True))
    def get_delivery(self, step):
        return shown_deliveries(self, step.tenant_id, step.run_id).step(step)


class RunSerializer(serializers.ModelSerializer):
    workflow_name = serializers.CharField(source="workflow.name", read_only=True)
    status = serializers.SerializerMethodField(help_text=(
        "queued, running, success, failed, skipped, or delivery_failed: the actions ran but an outbox message "
        "they wrote is dead (a re-queued message that gets through makes it success again)."))
    skip_reason = serializers.ChoiceField(choices=Run.SkipReason.choices, allow_blank=True, read_only=True,
                                          help_text="Why the run was skipped; blank when it was not.")
    delivery = serializers.SerializerMethodField(help_text=(
        "How many of the run's outbox messages are queued, retrying, delivered and dead; null when it wrote none."))
    steps = RunStepSerializer(many=True, read_only=True)

    class Meta:
        model = Run
        fields = ["id", "workflow", "workflow_name", "workflow_version", "account", "subject_model", "subject_id",
                  "status", "skip_reason", "manual", "depth", "attempt", "retry_of", "scheduled_for", "trigger_data", "result", "trace",
                  "error", "started_at", "finished_at", "created_at", "delivery", "steps"]
        read_only_fields = fields

    @staticmethod
    def run_id_of(run) -> int:
        return run.pk

    @extend_schema_field(serializers.ChoiceField(choices=[*Run.Status.values, DELIVERY_FAILED]))
    def get_status(self, run) -> str:
        return shown_deliveries(self, run.tenant_id, run.pk).status(run)

    @extend_schema_field(serializers.DictField(child=serializers.IntegerField(), allow_null=True))
    def get_delivery(self, run):
        return shown_deliveries(self, run.tenant_id, run.pk).run(run)


# --- requests to run a rule -----------------------------------------------------------------------------

class RunRequestSerializer(serializers.Serializer):
    """What a run started by hand reads: an account, an entity of the rule's model, or a webhook body."""

    account_id = TenantRelatedField(Account, required=False, allow_null=True)
    entity_type = serializers.CharField(required=False, allow_blank=True, max_length=200)
    entity_id = serializers.CharField(required=False, allow_blank=True, max_length=64)
    payload = serializers.DictField(required=False, help_text="For webhook rules: the JSON body to run on.")
    context = serializers.DictField(required=False, default=dict, help_text="Extra data, {{ custom.… }} in templates.")


class ExecuteSerializer(RunRequestSerializer):
    workflow_id = TenantRelatedField(Workflow)


class SampleEventSerializer(serializers.Serializer):
    type = serializers.RegexField(r"^[a-z][a-z0-9_]{1,63}$")
    payload = serializers.DictField(required=False, default=dict)
    changes = serializers.DictField(required=False, default=dict, help_text='{"field": {"old": x, "new": y}}')


class TestRequestSerializer(RunRequestSerializer):
    event = SampleEventSerializer(required=False, help_text="A sample event: the answer says whether the "
                                                             "trigger matches it, and conditions see its changes.")
    backtest_days = serializers.IntegerField(min_value=1, max_value=90, required=False, help_text=(
        "Also replay the trigger and conditions over the stored events of the last N days (see backtest)."))


class DryRunStepSerializer(serializers.Serializer):
    position = serializers.IntegerField()
    type = serializers.CharField()
    status = serializers.CharField()
    output = serializers.JSONField()
    error = serializers.CharField()
    duration_ms = serializers.FloatField()


class DryRunSerializer(serializers.Serializer):
    """The answer of ``POST /{id}/test``; nothing it describes was kept."""

    dry_run = serializers.BooleanField()
    workflow_id = serializers.IntegerField()
    live = serializers.BooleanField(help_text="Whether the rule fires on its own now (active and enabled).")
    account_id = serializers.CharField(allow_null=True)
    subject = serializers.DictField()
    trigger = serializers.DictField(help_text="checked: a sample event was given; matched: the trigger took it.")
    conditions = serializers.DictField(help_text="passed, and the trace: each condition with the values seen.")
    status = serializers.CharField()
    skip_reason = serializers.CharField()
    error = serializers.CharField()
    actions = DryRunStepSerializer(many=True)
    would_fire = serializers.BooleanField()
    backtest = serializers.DictField(required=False, help_text=(
        "With backtest_days: events_scanned, trigger_matched, would_run and the accounts it would have run for."))


class WebhookAcceptedSerializer(serializers.Serializer):
    run_id = serializers.IntegerField()
    status = serializers.CharField()
    skip_reason = serializers.CharField()


class StatsSerializer(serializers.Serializer):
    total_workflows = serializers.IntegerField()
    active_workflows = serializers.IntegerField()
    workflows = serializers.DictField(child=serializers.IntegerField())
    run_count = serializers.IntegerField(help_text="Runs that acted (not skipped).")
    runs = serializers.DictField(child=serializers.IntegerField())
    success_rate = serializers.FloatField(allow_null=True, help_text="success / (success + failed)")
    skipped_by_reason = serializers.DictField(child=serializers.IntegerField())
    runs_per_day = serializers.ListField(child=serializers.DictField())
