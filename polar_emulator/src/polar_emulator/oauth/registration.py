"""Dynamic client registration (RFC 7591) and client configuration (RFC 7592), as Polar does it.

``POST /v1/oauth2/register`` is open to anonymous callers (the emulator has no web session, so
every caller is anonymous). ``GET|PUT|DELETE /v1/oauth2/register/{client_id}`` take the
registration access token as a Bearer token.

A body passes two checks, in Polar's order:

1. Polar's pydantic schema (``OAuth2ClientConfiguration``): a failure is FastAPI's 422. This is
   where an http redirect URI to a public host, an unknown grant type, response type or
   auth method, or a missing ``client_name`` / ``redirect_uris`` is refused.
2. Authlib's ``ClientMetadataClaims`` against the discovery metadata: a failure is 400
   ``invalid_client_metadata`` (e.g. an unknown scope, a redirect URI with a fragment).

Like Polar, only the RFC 7591 claims are kept: ``default_sub_type`` is validated but not stored.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from authlib.oauth2.rfc7591 import ClientRegistrationEndpoint as _ClientRegistrationEndpoint
from authlib.oauth2.rfc7592 import ClientConfigurationEndpoint as _ClientConfigurationEndpoint
from pydantic import AfterValidator, AnyUrl, BaseModel, HttpUrl

from polar_emulator.domain.oauth import DEFAULT_CLIENT_SCOPE, OAuth2Client
from polar_emulator.oauth.metadata import server_metadata
from polar_emulator.oauth.protocols import ServerWithStore
from polar_emulator.oauth.requests import StarletteJsonRequest
from polar_emulator.tokens import generate_token

CLIENT_ID_PREFIX = "polar_ci_"
CLIENT_SECRET_PREFIX = "polar_cs_"
CLIENT_REGISTRATION_TOKEN_PREFIX = "polar_crt_"
# Route names, as Polar's (registration_client_uri is built from the first).
GET_CLIENT_ROUTE = "oauth2:get_client"


# -- Polar's request schema (server/polar/oauth2/schemas.py) ----------------------------------


def _is_localhost(host: str) -> bool:
    try:
        return ipaddress.IPv4Address(host).is_private
    except ValueError:
        return host == "localhost" or host.endswith(".localhost")


def _is_https_or_localhost(value: AnyUrl) -> AnyUrl:
    if value.scheme == "http" and (value.host is None or not _is_localhost(value.host)):
        raise ValueError("An HTTPS URL is required.")
    return value


URIOrLocalhost = Annotated[AnyUrl, AfterValidator(_is_https_or_localhost)]


class OAuth2ClientConfiguration(BaseModel):
    redirect_uris: list[URIOrLocalhost]
    token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post", "none"] = (
        "client_secret_post"
    )
    grant_types: list[Literal["authorization_code", "refresh_token"]] = [
        "authorization_code",
        "refresh_token",
    ]
    response_types: list[Literal["code"]] = ["code"]
    scope: str = DEFAULT_CLIENT_SCOPE
    client_name: str
    client_uri: str | None = None
    logo_uri: HttpUrl | None = None
    tos_uri: HttpUrl | None = None
    policy_uri: HttpUrl | None = None
    default_sub_type: Literal["user", "organization"] = "user"

    def payload(self) -> dict[str, Any]:
        """What Polar hands Authlib: the JSON dump without unset optional values."""
        return self.model_dump(mode="json", exclude_none=True)


class OAuth2ClientConfigurationUpdate(OAuth2ClientConfiguration):
    client_id: str


# -- Authlib endpoints ------------------------------------------------------------------------


def _server_metadata() -> dict[str, Any]:
    # Only the *_supported lists matter here; the URLs are not used.
    return server_metadata("")


def _registration_info(client: OAuth2Client, request: StarletteJsonRequest) -> dict[str, str]:
    assert client.registration_access_token is not None
    return {
        "registration_client_uri": request.url_for(GET_CLIENT_ROUTE, client_id=client.client_id),
        "registration_access_token": client.registration_access_token,
    }


def _hide_public_secret(body: Any) -> None:
    """Polar's workaround: public clients get no ``client_secret`` / ``client_secret_expires_at``."""
    if isinstance(body, dict) and body.get("token_endpoint_auth_method") == "none":
        body.pop("client_secret", None)
        body.pop("client_secret_expires_at", None)


@dataclass
class RegistrationCredential:
    """The Bearer token of a configuration request; it is valid only for its own client."""

    token: str

    def check_client(self, client: OAuth2Client) -> bool:
        return client.check_registration_access_token(self.token)


class ClientRegistrationEndpoint(_ClientRegistrationEndpoint):
    server: ServerWithStore

    def authenticate_token(self, request: StarletteJsonRequest) -> str:
        # Anonymous registration is allowed; Polar falls back to this marker.
        return request.user if request.user is not None else "dynamic_client"

    def get_server_metadata(self) -> dict[str, Any]:
        return _server_metadata()

    def generate_client_id(self, request: StarletteJsonRequest) -> str:
        return generate_token(CLIENT_ID_PREFIX)

    def generate_client_secret(self, request: StarletteJsonRequest) -> str:
        return generate_token(CLIENT_SECRET_PREFIX)

    def generate_client_info(self, request: StarletteJsonRequest) -> dict[str, Any]:
        info = super().generate_client_info(request)
        info["client_id_issued_at"] = int(self.server.store.clock.time())
        return info

    def generate_client_registration_info(
        self, client: OAuth2Client, request: StarletteJsonRequest
    ) -> dict[str, str]:
        return _registration_info(client, request)

    def create_registration_response(self, request: StarletteJsonRequest) -> tuple[int, Any, list]:
        status, body, headers = super().create_registration_response(request)
        _hide_public_secret(body)
        return status, body, headers

    def save_client(
        self, client_info: dict[str, Any], client_metadata: dict[str, Any], request: StarletteJsonRequest
    ) -> OAuth2Client:
        # Public clients get a secret too (Polar always sets one); it is only never shown.
        client = OAuth2Client(
            client_id=client_info["client_id"],
            client_secret=client_info["client_secret"],
            client_name=client_metadata["client_name"],
            redirect_uris=[],
            client_id_issued_at=client_info["client_id_issued_at"],
            client_secret_expires_at=client_info["client_secret_expires_at"],
            registration_access_token=generate_token(CLIENT_REGISTRATION_TOKEN_PREFIX),
        )
        client.set_client_metadata(client_metadata)
        self.server.store.add_client(client)
        return client


class ClientConfigurationEndpoint(_ClientConfigurationEndpoint):
    server: ServerWithStore

    def authenticate_token(self, request: StarletteJsonRequest) -> RegistrationCredential | None:
        authorization = request.headers.get("Authorization")
        if authorization is None:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token != "":
            return RegistrationCredential(token)
        return None

    def authenticate_client(self, request: StarletteJsonRequest) -> OAuth2Client | None:
        client = self.server.store.clients.get(request.path_params.get("client_id", ""))
        credential = request.credential
        if client is None or credential is None or not credential.check_client(client):
            return None
        return client

    def revoke_access_token(self, *args: Any) -> None:
        # Polar keeps the token (there is nothing to revoke for an unknown client).
        return None

    def check_permission(self, client: OAuth2Client, request: StarletteJsonRequest) -> bool:
        return True

    def get_server_metadata(self) -> dict[str, Any]:
        return _server_metadata()

    def generate_client_registration_info(
        self, client: OAuth2Client, request: StarletteJsonRequest
    ) -> dict[str, str]:
        return _registration_info(client, request)

    def create_read_client_response(
        self, client: OAuth2Client, request: StarletteJsonRequest
    ) -> tuple[int, Any, list]:
        status, body, headers = super().create_read_client_response(client, request)
        _hide_public_secret(body)
        return status, body, headers

    def update_client(
        self, client: OAuth2Client, client_metadata: dict[str, Any], request: StarletteJsonRequest
    ) -> OAuth2Client:
        client.set_client_metadata({**client.client_metadata, **client_metadata})
        return client

    def delete_client(self, client: OAuth2Client, request: StarletteJsonRequest) -> None:
        """The client is gone (its pending codes stop working), and so are all of its tokens."""
        store = self.server.store
        store.clients.pop(client.client_id, None)
        now = store.clock.time()
        for token in store.tokens_by_access.values():
            if token.client_id != client.client_id:
                continue
            if token.access_token_revoked_at is None or token.refresh_token_revoked_at is None:
                token.access_token_revoked_at = now
                token.refresh_token_revoked_at = now
