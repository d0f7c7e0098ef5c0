"""Helpers for the OAuth2 tests: drive the consent form and the token endpoint over HTTP."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx

from polar_emulator.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_REDIRECT_URI, DEMO_USER_EMAIL

TOKEN_URL = "/v1/oauth2/token"
SCOPE = "openid email organizations:read products:read"


def pkce_pair() -> tuple[str, str]:
    """A code verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(location).query).items()}


def authorize_params(
    *, client_id: str = DEMO_CLIENT_ID, redirect_uri: str = DEMO_REDIRECT_URI, **extra: str | None
) -> dict[str, str]:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": SCOPE,
        "state": "state-123",
    }
    params.update(extra)  # type: ignore[arg-type]
    return {k: v for k, v in params.items() if v is not None}


def consent(
    http: httpx.Client,
    *,
    user: str = DEMO_USER_EMAIL,
    organizations: list[str] | tuple[str, ...] = (),
    action: str = "allow",
    **params: str | None,
) -> httpx.Response:
    """POST the consent form, the authorization request in the query string, as the page does."""
    form: dict[str, Any] = {"user": user, "action": action, "organizations": list(organizations)}
    return http.post("/oauth2/authorize", params=authorize_params(**params), data=form)


def get_code(http: httpx.Client, **kwargs: Any) -> str:
    response = consent(http, **kwargs)
    assert response.status_code == 302, response.text
    query = query_of(response.headers["location"])
    assert "code" in query, query
    return query["code"]


def exchange(
    http: httpx.Client,
    code: str,
    *,
    client_id: str = DEMO_CLIENT_ID,
    client_secret: str | None = DEMO_CLIENT_SECRET,
    redirect_uri: str = DEMO_REDIRECT_URI,
    **extra: str,
) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
    }
    if client_secret is not None:
        data["client_secret"] = client_secret
    data.update(extra)
    return http.post(TOKEN_URL, data=data)


def tokens(http: httpx.Client, **kwargs: Any) -> dict[str, Any]:
    """Run the whole code flow with the demo client; returns the token response."""
    response = exchange(http, get_code(http, **kwargs))
    assert response.status_code == 200, response.text
    return response.json()


def _client_call(path: str, field: str, **fixed: str) -> Callable[..., httpx.Response]:
    """A POST to ``path`` of the ``fixed`` form fields, ``field`` and a client's credentials
    (the demo client's unless ``client_id``/``client_secret`` are given), then any ``extra`` fields."""

    def send(
        http: httpx.Client,
        value: str,
        *,
        client_id: str = DEMO_CLIENT_ID,
        client_secret: str = DEMO_CLIENT_SECRET,
        **extra: str,
    ) -> httpx.Response:
        data = {**fixed, field: value, "client_id": client_id, "client_secret": client_secret, **extra}
        return http.post(path, data=data)

    return send


# ``refresh(http, refresh_token, ...)``, ``introspect(http, token, ...)``, ``revoke(http, token, ...)``;
# ``grant(http, grant_type, ...)`` is a token request with nothing but the grant type and credentials.
refresh = _client_call(TOKEN_URL, "refresh_token", grant_type="refresh_token")
introspect = _client_call("/v1/oauth2/introspect", "token")
revoke = _client_call("/v1/oauth2/revoke", "token")
grant = _client_call(TOKEN_URL, "grant_type")


def credentials(client: dict[str, Any]) -> dict[str, str]:
    """A client's ``client_id`` and ``client_secret``, as keyword arguments for the calls above."""
    return {"client_id": client["client_id"], "client_secret": client["client_secret"]}


def userinfo(http: httpx.Client, access_token: str) -> httpx.Response:
    return http.get("/v1/oauth2/userinfo", headers={"Authorization": f"Bearer {access_token}"})


def new_client(
    http: httpx.Client, *, public: bool = False, scope: str | None = None, name: str = "Other app"
) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "redirect_uris": [DEMO_REDIRECT_URI], "public": public}
    if scope is not None:
        body["scope"] = scope
    response = http.post("/_emulator/clients", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def advance_clock(http: httpx.Client, seconds: float) -> None:
    http.post("/_emulator/clock", json={"advance_seconds": seconds}).raise_for_status()


def org_ids(emulator: Any, email: str) -> list[str]:
    store = emulator.store
    user = store.user_by_email(email)
    assert user is not None
    return store.user_organization_ids(user.id)
