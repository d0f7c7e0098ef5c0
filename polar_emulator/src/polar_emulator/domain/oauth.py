"""OAuth2 clients, authorization codes and tokens, with Authlib's model interfaces.

Lifetimes and rules follow Polar (see the project's notes): codes live 5 minutes and are
single use; the code grant's access token lives 10 days, a refreshed one 1 hour; refresh
tokens never expire by time; revoking either half makes the whole row unusable.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin, TokenMixin
from authlib.oauth2.rfc6749.util import list_to_scope, scope_to_list

from polar_emulator.clock import Clock

CODE_LIFETIME = 300
# Every scope Polar knows; the last two are never advertised nor a client's default.
ALL_SCOPES = (  # noqa: SIM905 - one string, as in the notes
    "openid profile email user:read user:write organizations:read organizations:write custom_fields:read "
    "custom_fields:write discounts:read discounts:write checkout_links:read checkout_links:write checkouts:read "
    "checkouts:write transactions:read transactions:write payouts:read payouts:write products:read products:write "
    "benefits:read benefits:write events:read events:write meters:read meters:write files:read files:write "
    "subscriptions:read subscriptions:write customers:read customers:write members:read members:write wallets:read "
    "wallets:write disputes:read disputes:write customer_meters:read customer_sessions:write member_sessions:write "
    "customer_seats:read customer_seats:write orders:read orders:write refunds:read refunds:write payments:read "
    "metrics:read metrics:write webhooks:read webhooks:write license_keys:read license_keys:write customer_portal:read "
    "customer_portal:write notifications:read notifications:write notification_recipients:read "
    "notification_recipients:write organization_access_tokens:read organization_access_tokens:write"
).split()
SCOPES_SUPPORTED = [s for s in ALL_SCOPES if not s.startswith("organization_access_tokens:")]
DEFAULT_CLIENT_SCOPE = " ".join(SCOPES_SUPPORTED)
# The RFC 7591 metadata a client keeps (Authlib's ClientMetadataClaims that Polar's schema allows).
CLIENT_METADATA_KEYS = (
    "redirect_uris",
    "token_endpoint_auth_method",
    "grant_types",
    "response_types",
    "client_name",
    "client_uri",
    "logo_uri",
    "scope",
    "tos_uri",
    "policy_uri",
)


def _same(expected: str, given: str) -> bool:
    """Constant-time equality of two strings of any characters (``hmac.compare_digest`` raises
    TypeError on non-ASCII ``str``, which answered a 500 instead of ``invalid_client``)."""
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8", "surrogatepass"))


@dataclass
class OAuth2Client(ClientMixin):
    client_id: str
    client_secret: str | None
    client_name: str
    redirect_uris: list[str]
    scope: str = DEFAULT_CLIENT_SCOPE
    # Polar's dashboard registers confidential clients as client_secret_post, public ones as none.
    token_endpoint_auth_method: str = "client_secret_post"
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token")
    response_types: tuple[str, ...] = ("code",)
    # RFC 7591/7592 (dynamic registration, see oauth/registration.py).
    client_uri: str | None = None
    logo_uri: str | None = None
    tos_uri: str | None = None
    policy_uri: str | None = None
    client_id_issued_at: int = 0
    client_secret_expires_at: int = 0
    registration_access_token: str | None = None

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"

    @property
    def client_info(self) -> dict[str, Any]:
        """RFC 7591 3.2.1 client information, as Authlib's SQLAlchemy client mixin."""
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "client_id_issued_at": self.client_id_issued_at,
            "client_secret_expires_at": self.client_secret_expires_at,
        }

    @property
    def client_metadata(self) -> dict[str, Any]:
        """The registered metadata; unset (None) values are left out."""
        values = {key: getattr(self, key) for key in CLIENT_METADATA_KEYS}
        for key in ("grant_types", "response_types", "redirect_uris"):
            values[key] = list(values[key])
        return {k: v for k, v in values.items() if v is not None}

    def set_client_metadata(self, metadata: dict[str, Any]) -> None:
        for key, value in metadata.items():
            if key not in CLIENT_METADATA_KEYS:
                continue
            if key in ("grant_types", "response_types"):
                value = tuple(value)
            elif key == "redirect_uris":
                value = list(value)
            setattr(self, key, value)

    def check_registration_access_token(self, token: str) -> bool:
        return self.registration_access_token is not None and _same(self.registration_access_token, token)

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return self.redirect_uris[0] if self.redirect_uris else None

    def get_allowed_scope(self, scope: str) -> str:
        if not scope:
            return ""
        allowed = set(scope_to_list(self.scope))
        return list_to_scope([s for s in scope_to_list(scope) if s in allowed])

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.client_secret is not None and _same(self.client_secret, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint == "token":
            return self.token_endpoint_auth_method == method
        return True

    def check_response_type(self, response_type: str) -> bool:
        return response_type in self.response_types

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.grant_types


@dataclass
class AuthorizationCode(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user_id: str
    auth_time: float
    organization_ids: list[str] = field(default_factory=list)
    nonce: str | None = None
    code_challenge: str | None = None
    code_challenge_method: str | None = None
    clock: Clock | None = None

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_auth_time(self) -> int:
        return int(self.auth_time)

    def get_nonce(self) -> str | None:
        return self.nonce

    def is_expired(self) -> bool:
        assert self.clock is not None
        return self.auth_time + CODE_LIFETIME < self.clock.time()


@dataclass
class Token(TokenMixin):
    access_token: str
    refresh_token: str | None
    client_id: str
    user_id: str
    scope: str
    issued_at: float
    expires_in: int
    organization_ids: list[str] = field(default_factory=list)  # empty means unrestricted
    token_type: str = "Bearer"
    sub_type: str = "user"
    access_token_revoked_at: float | None = None
    refresh_token_revoked_at: float | None = None
    clock: Clock | None = None

    def check_client(self, client: ClientMixin) -> bool:
        return self.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return self.expires_in

    def expires_at(self) -> float:
        return self.issued_at + self.expires_in

    def is_expired(self) -> bool:
        assert self.clock is not None
        return self.expires_at() < self.clock.time()

    def is_revoked(self) -> bool:
        return bool(self.access_token_revoked_at or self.refresh_token_revoked_at)

    def is_usable_access_token(self) -> bool:
        return not self.is_revoked() and not self.is_expired()

    def scopes(self) -> set[str]:
        return set(scope_to_list(self.scope) or [])
