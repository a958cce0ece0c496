"""Request-scoped tenant context: whatever the request sets is reset when it ends."""

from .tenancy import tenant_context


class TenantContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        with tenant_context(None):
            return self.get_response(request)
