from .customers import Account, Contact, RiskLevel, Tag
from .health import COMPONENTS, HealthScore
from .opportunities import Opportunity
from .journey import DEFAULT_STAGES, JourneyHistory, JourneyStage
from .activity import Engagement, Goal, SupportTicket, SurveyResponse, UsageMetric
from .audit import AuditLog
from .tenants import Membership, Role, Tenant
from .tokens import ApiToken
from .work import Note, Task

__all__ = [
    "COMPONENTS", "DEFAULT_STAGES", "Account", "ApiToken", "AuditLog", "Contact", "Engagement", "Goal", "HealthScore",
    "JourneyHistory", "JourneyStage", "Membership", "Note", "Opportunity", "RiskLevel", "Role", "SupportTicket", "SurveyResponse",
    "Tag", "Task", "Tenant", "UsageMetric",
]
