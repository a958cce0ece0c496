"""Request-scoped tenancy: every request starts with nothing visible and ends by resetting its scope.

API views then pick the request's tenant (``permissions.resolve_membership``); admin pages see the
tenants of the staff user's memberships, superusers everything (an explicit system context).
"""

from django.conf import settings

from .tenancy import system_context, tenant_context, tenants_context, user_context


class TenantContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.admin_prefix = "/" + settings.ADMIN_URL

    def __call__(self, request):
        user = getattr(request, "user", None)
        # The session's user (admin, browsable API) sees their own memberships under row-level security;
        # a token's user is known only inside the view (``permissions.resolve_membership`` sets it).
        with user_context(user.pk if user is not None and user.is_authenticated else None):
            with self._scope_for(request):
                return self.get_response(request)

    def _scope_for(self, request):
        user = getattr(request, "user", None)
        if request.path.startswith(self.admin_prefix) and user is not None and user.is_authenticated and user.is_staff:
            if user.is_superuser:
                return system_context(f"admin request by superuser {user.pk}")
            return tenants_context(user.memberships.values_list("tenant_id", flat=True))
        return tenant_context(None)
