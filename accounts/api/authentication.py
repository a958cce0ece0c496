"""``Authorization: Token <key>`` against ``accounts.ApiToken``: the header DRF's ``TokenAuthentication`` reads
(clients keep working), checked against a digest instead of a stored key, with expiry and revocation."""

from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed


class ApiTokenAuthentication(TokenAuthentication):
    """Invalid, revoked or expired: 401 saying which. The OpenAPI schema documents it as DRF's token scheme
    (drf-spectacular's ``TokenScheme`` matches subclasses)."""

    def authenticate_credentials(self, key):
        from .. import tokens  # here: DRF imports authentication classes before the app registry is ready

        token = tokens.api_token_find(key)
        if token is None:
            raise AuthenticationFailed("Invalid token.")
        state = token.state
        if state == token.State.REVOKED:
            raise AuthenticationFailed("Token revoked.")
        if state == token.State.EXPIRED:
            raise AuthenticationFailed("Token expired.")
        if not token.user.is_active:
            raise AuthenticationFailed("User inactive or deleted.")
        tokens.api_token_touch(token)
        return token.user, token
