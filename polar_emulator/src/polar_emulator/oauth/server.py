"""Authlib's AuthorizationServer for Starlette, over the emulator's store (Polar's own setup)."""

from __future__ import annotations

import json
from typing import Any

from authlib.oauth2 import AuthorizationServer as _AuthorizationServer
from authlib.oauth2.base import invalid_error_characters
from authlib.oauth2.rfc6749.errors import UnsupportedResponseTypeError
from authlib.oauth2.rfc6749.hooks import hooked
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7009 import RevocationEndpoint as _RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as _IntrospectionEndpoint
from starlette.requests import Request
from starlette.responses import Response

from polar_emulator.domain.oauth import ALL_SCOPES, OAuth2Client, Token
from polar_emulator.domain.store import Store
from polar_emulator.oauth.grants import AuthorizationCodeGrant, OpenIDCode, RefreshTokenGrant
from polar_emulator.oauth.metadata import ENDPOINT_AUTH_METHODS, ISSUER
from polar_emulator.oauth.registration import ClientConfigurationEndpoint, ClientRegistrationEndpoint
from polar_emulator.oauth.requests import StarletteJsonRequest, StarletteOAuth2Request
from polar_emulator.tokens import generate_token

ACCESS_TOKEN_PREFIX = "polar_at_u_"
REFRESH_TOKEN_PREFIX = "polar_rt_u_"


def safe_description(text: str) -> str:
    """Authlib refuses error descriptions with some characters (RFC 6749 5.2); mask them."""
    bad = set(invalid_error_characters(text))
    return "".join("?" if c in bad else c for c in text)


class _QueryTokenMixin:
    server: AuthorizationServer

    def query_token(self, token_string: str, token_type_hint: str | None) -> Token | None:
        store = self.server.store
        if token_type_hint == "access_token":
            return store.tokens_by_access.get(token_string)
        if token_type_hint == "refresh_token":
            return store.tokens_by_refresh.get(token_string)
        return store.tokens_by_access.get(token_string) or store.tokens_by_refresh.get(token_string)


class RevocationEndpoint(_QueryTokenMixin, _RevocationEndpoint):
    CLIENT_AUTH_METHODS = ENDPOINT_AUTH_METHODS

    def revoke_token(self, token: Token, request: StarletteOAuth2Request) -> None:
        # Hint access_token revokes only that half, but is_revoked() is an OR: the refresh
        # token stops working too.
        now = self.server.store.clock.time()
        token.access_token_revoked_at = now
        if request.form.get("token_type_hint") != "access_token":
            token.refresh_token_revoked_at = now


class IntrospectionEndpoint(_QueryTokenMixin, _IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ENDPOINT_AUTH_METHODS

    def check_permission(self, token: Token, client: OAuth2Client, request: StarletteOAuth2Request) -> bool:
        return token.check_client(client)

    def introspect_token(self, token: Token) -> dict[str, Any]:
        return introspection_data(token)


def introspection_data(token: Token) -> dict[str, Any]:
    """Polar's OAuth2Token.get_introspection_data; ``organizations: []`` means all."""
    return {
        "active": True,
        "client_id": token.client_id,
        "token_type": token.token_type,
        "scope": token.scope,
        "sub_type": token.sub_type,
        "sub": token.user_id,
        "organizations": list(token.organization_ids),
        "aud": token.client_id,
        "iss": ISSUER,
        "exp": int(token.expires_at()),
        "iat": int(token.issued_at),
    }


class AuthorizationServer(_AuthorizationServer):
    def __init__(self, store: Store) -> None:
        # Requested scopes are checked against all 63 values, advertised or not.
        super().__init__(scopes_supported=list(ALL_SCOPES))
        self.store = store
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                lambda **_: generate_token(ACCESS_TOKEN_PREFIX),
                lambda **_: generate_token(REFRESH_TOKEN_PREFIX),
            ),
        )
        self.register_endpoint(RevocationEndpoint)
        self.register_endpoint(IntrospectionEndpoint)
        self.register_endpoint(ClientRegistrationEndpoint)
        self.register_endpoint(ClientConfigurationEndpoint)
        self.register_grant(AuthorizationCodeGrant, [CodeChallenge(required=True), OpenIDCode(self)])
        self.register_grant(RefreshTokenGrant)

    def query_client(self, client_id: str) -> OAuth2Client | None:
        return self.store.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: StarletteOAuth2Request) -> None:
        self.store.add_token(
            Token(
                access_token=token["access_token"],
                refresh_token=token.get("refresh_token"),
                client_id=request.client.client_id,
                user_id=request.user.id,
                scope=token.get("scope", ""),
                issued_at=self.store.clock.time(),
                expires_in=int(token["expires_in"]),
                organization_ids=list(request.organization_ids),
            )
        )

    def create_oauth2_request(self, request: Any) -> StarletteOAuth2Request:
        if isinstance(request, StarletteOAuth2Request):
            return request
        assert isinstance(request, Request)
        return StarletteOAuth2Request(request, getattr(request, "_form", None))

    def create_json_request(self, request: Any) -> StarletteJsonRequest:
        if isinstance(request, StarletteJsonRequest):
            return request
        return StarletteJsonRequest(request, getattr(request, "_json", None))

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
        if isinstance(body, dict):
            body = json.dumps(body)
        return Response(body, status_code=status, headers=dict(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    @hooked
    def get_authorization_grant(self, request: StarletteOAuth2Request) -> Any:
        """Authlib's, with a readable unsupported_response_type description."""
        for grant_cls, extensions in self._authorization_grants:
            if grant_cls.check_authorization_endpoint(request):
                grant = grant_cls(request, self)
                for ext in extensions or []:
                    ext(grant)
                return grant
        redirect_uri = None
        client = self.query_client(request.payload.client_id) if request.payload.client_id else None
        if client is not None:
            requested = request.payload.redirect_uri
            if requested:
                redirect_uri = requested if client.check_redirect_uri(requested) else None
            else:
                redirect_uri = client.get_default_redirect_uri()
        response_type = safe_description(request.payload.response_type or "")
        raise UnsupportedResponseTypeError(
            response_type,
            description=f"response_type={response_type} is not supported",
            redirect_uri=redirect_uri,
        )


def get_server(request: Request) -> AuthorizationServer:
    """One server per app; the store it wraps is reset in place, so it stays valid."""
    state = request.app.state
    server = getattr(state, "oauth2_server", None)
    if server is None:
        server = AuthorizationServer(state.store)
        state.oauth2_server = server
    return server
