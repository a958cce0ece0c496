"""Domain signals ``accounts`` sends. It knows nothing of automation; ``automation`` listens to these.

Every signal is sent with ``sender=<model class>`` and the keyword arguments listed beside it.
"""

from django.dispatch import Signal

health_score_recorded = Signal()  # score: HealthScore, previous: HealthScore | None
stage_changed = Signal()  # account, history: JourneyHistory, from_stage, to_stage
status_changed = Signal()  # account, from_status, to_status, created: bool
goal_status_changed = Signal()  # goal, from_status, to_status, created: bool
demo_seeded = Signal()  # tenant: Tenant (sender=Tenant); sent when seed_demo's data is complete
