"""OAuth2 / OpenID Connect routes.

Every handler awaits only to read the body, then does all of its store work synchronously, so
each request's reads and writes are atomic on the event loop (e.g. of two parallel refreshes of
one token, exactly one wins).
"""

from __future__ import annotations

from typing import Any

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749.errors import InvalidRequestError
from fastapi import APIRouter
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from polar_emulator.auth import authenticate, note
from polar_emulator.errors import not_found
from polar_emulator.oauth.consent import pick_user, render_consent, resolve_organizations
from polar_emulator.oauth.grants import AuthorizationCodeGrant, user_info
from polar_emulator.oauth.keys import jwks
from polar_emulator.oauth.metadata import server_metadata
from polar_emulator.oauth.registration import (
    GET_CLIENT_ROUTE,
    ClientConfigurationEndpoint,
    ClientRegistrationEndpoint,
    OAuth2ClientConfiguration,
    OAuth2ClientConfigurationUpdate,
)
from polar_emulator.oauth.requests import StarletteJsonRequest, StarletteOAuth2Request, read_oauth2_request
from polar_emulator.oauth.server import AuthorizationServer, get_server

router = APIRouter(include_in_schema=False)


def _error(server: AuthorizationServer, request: StarletteOAuth2Request, error: OAuth2Error) -> Response:
    """A redirect to the client when its redirect_uri is known and valid, else JSON 400/401."""
    error.state = request.payload.state
    return server.handle_error_response(request, error)


def _note_client(request: Request, oauth_request: StarletteOAuth2Request) -> None:
    if oauth_request.client is not None:
        note(request, client_id=oauth_request.client.client_id)


# -- the consent screen (polar.sh/oauth2/authorize) ------------------------------------------


@router.get("/oauth2/authorize")
async def authorize_page(request: Request) -> Response:
    oauth_request = await read_oauth2_request(request)
    server = get_server(request)
    try:
        grant: AuthorizationCodeGrant = server.get_consent_grant(oauth_request, end_user=None)
        user = pick_user(server.store, oauth_request.payload.data.get("user"))
        if user is None:
            raise InvalidRequestError("Unknown user.")
    except OAuth2Error as error:
        return _error(server, oauth_request, error)
    html = render_consent(
        server.store,
        client_name=oauth_request.client.client_name,
        scope=oauth_request.scope or "",
        user=user,
        sub_type=grant.sub_type,
        query=list(request.query_params.multi_items()),
    )
    return HTMLResponse(html)


@router.post("/oauth2/authorize")
async def authorize_decision(request: Request) -> Response:
    """The consent form: the original query (in the URL or as fields), ``user``,
    repeatable ``organizations`` and ``action=allow|deny``."""
    oauth_request = await read_oauth2_request(request)
    server = get_server(request)
    data = oauth_request.payload.data
    try:
        grant: AuthorizationCodeGrant = server.get_consent_grant(oauth_request, end_user=None)
        action = data.get("action")
        if action == "deny":
            args = grant.create_authorization_response(grant.redirect_uri, None)
        elif action == "allow":
            user = pick_user(server.store, data.get("user"))
            if user is None:
                raise InvalidRequestError("Unknown user.")
            oauth_request.organization_ids = resolve_organizations(
                server.store, user, oauth_request.payload.datalist.get("organizations", []), grant.sub_type
            )
            args = grant.create_authorization_response(grant.redirect_uri, user)
        else:
            raise InvalidRequestError("Invalid 'action': expected 'allow' or 'deny'.")
    except OAuth2Error as error:
        return _error(server, oauth_request, error)
    return server.handle_response(*args)


# -- the API host's OAuth2 endpoints ---------------------------------------------------------


@router.post("/v1/oauth2/token")
async def token(request: Request) -> Response:
    oauth_request = await read_oauth2_request(request)
    response = get_server(request).create_token_response(oauth_request)
    _note_client(request, oauth_request)
    return response


@router.post("/v1/oauth2/introspect")
async def introspect(request: Request) -> Response:
    oauth_request = await read_oauth2_request(request)
    response = get_server(request).create_endpoint_response("introspection", oauth_request)
    _note_client(request, oauth_request)
    return response


@router.post("/v1/oauth2/revoke")
async def revoke(request: Request) -> Response:
    oauth_request = await read_oauth2_request(request)
    response = get_server(request).create_endpoint_response("revocation", oauth_request)
    _note_client(request, oauth_request)
    return response


@router.api_route("/v1/oauth2/userinfo", methods=["GET", "POST"])
async def userinfo(request: Request) -> dict[str, Any]:
    subject = authenticate(request, [])
    return user_info(subject.user, subject.token.scope)


# -- dynamic client registration (RFC 7591 / 7592) ------------------------------------------


def _registration_response(request: Request, endpoint: str, data: dict[str, Any] | None) -> Response:
    json_request = StarletteJsonRequest(request, data)
    response = get_server(request).create_endpoint_response(endpoint, json_request)
    if json_request.client is not None:
        note(request, client_id=json_request.client.client_id)
    return response


@router.post("/v1/oauth2/register", name="oauth2:create_client")
async def create_client(request: Request, body: OAuth2ClientConfiguration) -> Response:
    return _registration_response(request, ClientRegistrationEndpoint.ENDPOINT_NAME, body.payload())


@router.get("/v1/oauth2/register/{client_id}", name=GET_CLIENT_ROUTE)
async def get_client(request: Request, client_id: str) -> Response:
    return _registration_response(request, ClientConfigurationEndpoint.ENDPOINT_NAME, None)


@router.put("/v1/oauth2/register/{client_id}", name="oauth2:update_client")
async def update_client(request: Request, client_id: str, body: OAuth2ClientConfigurationUpdate) -> Response:
    return _registration_response(request, ClientConfigurationEndpoint.ENDPOINT_NAME, body.payload())


@router.delete("/v1/oauth2/register/{client_id}", name="oauth2:delete_client")
async def delete_client(request: Request, client_id: str) -> Response:
    return _registration_response(request, ClientConfigurationEndpoint.ENDPOINT_NAME, None)


# -- discovery -------------------------------------------------------------------------------


@router.get("/.well-known/openid-configuration")
async def openid_configuration(request: Request) -> dict[str, Any]:
    return server_metadata(str(request.base_url))


@router.get("/.well-known/jwks.json")
async def jwks_json() -> JSONResponse:
    return JSONResponse(jwks())


# -- control ---------------------------------------------------------------------------------


class RevokeUserIn(BaseModel):
    email: str


@router.post("/_emulator/tokens/revoke-user")
async def revoke_user_tokens(request: Request, body: RevokeUserIn) -> dict[str, Any]:
    """Revoke every token of a user, both halves (like a leaked-token sweep; no event is sent)."""
    server = get_server(request)
    store = server.store
    user = store.user_by_email(body.email)
    if user is None:
        raise not_found()
    now = store.clock.time()
    revoked = 0
    for tok in store.tokens_by_access.values():
        if tok.user_id == user.id and not tok.is_revoked():
            tok.access_token_revoked_at = now
            tok.refresh_token_revoked_at = now
            revoked += 1
    return {"revoked": revoked}
