"""Polar's grants on Authlib: authorization code (+ PKCE, OpenID) and refresh token with rotation."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from authlib.oidc.core.errors import LoginRequiredError
from authlib.oidc.core.grants import OpenIDCode as _OpenIDCode
from joserfc.jwk import RSAKey

from polar_emulator.domain.oauth import AuthorizationCode, OAuth2Client, Token
from polar_emulator.domain.store import User
from polar_emulator.oauth.keys import ID_TOKEN_ALG, signing_key
from polar_emulator.oauth.metadata import ISSUER
from polar_emulator.oauth.protocols import ServerWithStore
from polar_emulator.oauth.requests import StarletteOAuth2Request
from polar_emulator.tokens import generate_token

ID_TOKEN_LIFETIME = 3600
AUTHORIZATION_CODE_PREFIX = "polar_ac_"
SUB_TYPES = ("user", "organization")
# Polar accepts all three methods on both grants; the client's registered one is enforced
# by OAuth2Client.check_endpoint_auth_method.
TOKEN_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]


def user_info(user: User, scope: str) -> dict[str, Any]:
    """Polar's userinfo: ``sub``, plus the e-mail with the ``email`` scope (never ``name``)."""
    info: dict[str, Any] = {"sub": user.id}
    if "email" in scope.split():
        info["email"] = user.email
        info["email_verified"] = True
    return info


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    server: ServerWithStore
    request: StarletteOAuth2Request
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS

    def __init__(self, request: StarletteOAuth2Request, server: ServerWithStore) -> None:
        super().__init__(request, server)
        self.register_hook("before_validate_authorization_request_payload", self._default_scope)
        self.register_hook("after_validate_consent_request", self._validate_sub_type_and_prompt)

    @property
    def sub_type(self) -> str:
        return self.request.payload.data.get("sub_type") or "user"

    def _default_scope(self, grant: AuthorizationCodeGrant, redirect_uri: str) -> None:
        """No ``scope`` in the request means the client's registered scope."""
        if self.request.payload.data.get("scope") is None:
            self.request.payload.data["scope"] = self.request.client.scope

    def _validate_sub_type_and_prompt(self, grant: AuthorizationCodeGrant, redirect_uri: str) -> None:
        if self.sub_type not in SUB_TYPES:
            raise InvalidRequestError("Invalid sub_type")
        # The emulator has no login session: prompt=none is always "not logged in".
        if self.request.payload.data.get("prompt") == "none":
            raise LoginRequiredError(redirect_uri=redirect_uri)

    def generate_authorization_code(self) -> str:
        return generate_token(AUTHORIZATION_CODE_PREFIX)

    def save_authorization_code(self, code: str, request: StarletteOAuth2Request) -> AuthorizationCode:
        data = request.payload.data
        store = self.server.store
        item = AuthorizationCode(
            code=code,
            client_id=request.client.client_id,
            redirect_uri=request.payload.redirect_uri or "",
            # Stored as requested; scopes the client lacks are dropped when the token is made.
            scope=data.get("scope") or "",
            user_id=request.user.id,
            auth_time=store.clock.time(),
            organization_ids=list(request.organization_ids),
            nonce=data.get("nonce"),
            code_challenge=data.get("code_challenge"),
            code_challenge_method=data.get("code_challenge_method"),
            clock=store.clock,
        )
        store.codes[code] = item
        return item

    def query_authorization_code(self, code: str, client: OAuth2Client) -> AuthorizationCode | None:
        item = self.server.store.codes.get(code)
        if item is None or item.client_id != client.client_id or item.is_expired():
            return None
        return item

    def delete_authorization_code(self, authorization_code: AuthorizationCode) -> None:
        self.server.store.codes.pop(authorization_code.code, None)

    def authenticate_user(self, authorization_code: AuthorizationCode) -> User | None:
        self.request.organization_ids = list(authorization_code.organization_ids)
        return self.server.store.users.get(authorization_code.user_id)


class RefreshTokenGrant(grants.RefreshTokenGrant):
    server: ServerWithStore
    request: StarletteOAuth2Request
    TOKEN_ENDPOINT_AUTH_METHODS = TOKEN_AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        # Refresh tokens have no time limit; only revocation (of either half) ends them.
        token = self.server.store.tokens_by_refresh.get(refresh_token)
        if token is not None and not token.is_revoked():
            return token
        return None

    def authenticate_user(self, refresh_token: Token) -> User | None:
        # The organization down-scope carries over to the new token.
        self.request.organization_ids = list(refresh_token.organization_ids)
        return self.server.store.users.get(refresh_token.user_id)

    def revoke_old_credential(self, refresh_token: Token) -> None:
        # Marks the whole old row revoked: its access token dies now too.
        refresh_token.refresh_token_revoked_at = self.server.store.clock.time()


class OpenIDCode(_OpenIDCode):
    """id_token on the code grant when ``openid`` is granted (never on refresh)."""

    def __init__(self, server: ServerWithStore) -> None:
        super().__init__(require_nonce=False)
        self.server = server

    def exists_nonce(self, nonce: str, request: StarletteOAuth2Request) -> bool:
        client_id = request.payload.client_id
        return any(c.client_id == client_id and c.nonce == nonce for c in self.server.store.codes.values())

    def resolve_client_private_key(self, client: OAuth2Client) -> RSAKey:
        return signing_key()

    def get_client_algorithm(self, client: OAuth2Client) -> str:
        return ID_TOKEN_ALG

    def get_encode_header(self, client: OAuth2Client) -> dict[str, str]:
        return {"alg": ID_TOKEN_ALG, "kid": signing_key().kid or ""}

    def get_authorization_code_claims(self, authorization_code: AuthorizationCode) -> dict[str, Any]:
        claims: dict[str, Any] = {"auth_time": authorization_code.get_auth_time()}
        if nonce := authorization_code.get_nonce():
            claims["nonce"] = nonce
        return claims

    def get_client_claims(self, client: OAuth2Client) -> dict[str, Any]:
        now = int(self.server.store.clock.time())
        return {"iss": ISSUER, "iat": now, "exp": now + ID_TOKEN_LIFETIME}

    def generate_user_info(self, user: User, scope: str) -> dict[str, Any]:
        return user_info(user, scope)
