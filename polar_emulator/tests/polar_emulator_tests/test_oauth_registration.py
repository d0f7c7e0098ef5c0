"""Dynamic client registration (RFC 7591) and client configuration (RFC 7592), over HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client

from polar_emulator import EmulatorServer
from polar_emulator.config import DEMO_CLIENT_ID, DEMO_USER_EMAIL
from polar_emulator_tests.oauth_support import exchange, get_code, pkce_pair, query_of, userinfo

REGISTER_URL = "/v1/oauth2/register"
REDIRECT_URI = "http://127.0.0.1:5001/app/callback"


def register(http: httpx.Client, **body: Any) -> httpx.Response:
    payload: dict[str, Any] = {"client_name": "Registered app", "redirect_uris": [REDIRECT_URI], **body}
    return http.post(REGISTER_URL, json=payload)


def registered(http: httpx.Client, **body: Any) -> dict[str, Any]:
    response = register(http, **body)
    assert response.status_code == 201, response.text
    return response.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_oauth_error(
    response: httpx.Response, status: int, error: str, description: str | None = None
) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    if description is not None:
        assert body["error_description"] == description


def test_discovery_points_at_a_working_registration_endpoint(control: httpx.Client) -> None:
    meta = control.get("/.well-known/openid-configuration").json()
    response = control.post(
        meta["registration_endpoint"], json={"client_name": "Via discovery", "redirect_uris": [REDIRECT_URI]}
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"


def test_registration_response_and_defaults(emulator: EmulatorServer, control: httpx.Client) -> None:
    body = registered(control)
    assert body["client_id"].startswith("polar_ci_")
    assert body["client_secret"].startswith("polar_cs_")
    assert body["registration_access_token"].startswith("polar_crt_")
    assert body["client_secret_expires_at"] == 0
    assert body["client_id_issued_at"] == int(emulator.store.clock.time())
    assert body["registration_client_uri"] == f"{emulator.url}/v1/oauth2/register/{body['client_id']}"
    # Polar's schema defaults; the scope defaults to every advertised scope.
    meta = control.get("/.well-known/openid-configuration").json()
    assert body["scope"] == " ".join(meta["scopes_supported"])
    assert body["token_endpoint_auth_method"] == "client_secret_post"
    assert body["grant_types"] == ["authorization_code", "refresh_token"]
    assert body["response_types"] == ["code"]
    assert body["client_name"] == "Registered app"
    assert body["redirect_uris"] == [REDIRECT_URI]
    # Unset optional metadata is left out rather than sent as null.
    assert None not in body.values()
    assert not {"client_uri", "logo_uri", "tos_uri", "policy_uri"} & set(body)

    client = emulator.store.clients[body["client_id"]]
    assert client.client_secret == body["client_secret"]
    assert client.registration_access_token == body["registration_access_token"]


def test_optional_metadata_is_kept_and_default_sub_type_is_only_validated(control: httpx.Client) -> None:
    body = registered(
        control,
        client_uri="https://app.example.com",
        logo_uri="https://app.example.com/logo.png",
        tos_uri="https://app.example.com/tos",
        policy_uri="https://app.example.com/privacy",
        default_sub_type="organization",
    )
    assert body["client_uri"] == "https://app.example.com"
    assert body["logo_uri"] == "https://app.example.com/logo.png"
    assert body["tos_uri"] == "https://app.example.com/tos"
    assert body["policy_uri"] == "https://app.example.com/privacy"
    # As at Polar: only RFC 7591 claims are stored, so default_sub_type is not echoed back.
    assert "default_sub_type" not in body

    bad = register(control, default_sub_type="team")
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "default_sub_type"]


def test_confidential_client_runs_the_code_flow_with_authlib(
    emulator: EmulatorServer, control: httpx.Client
) -> None:
    meta = control.get("/.well-known/openid-configuration").json()
    reg = registered(
        control, client_name="Dynamic app", scope="openid email organizations:read products:read"
    )

    with OAuth2Client(
        client_id=reg["client_id"],
        client_secret=reg["client_secret"],
        token_endpoint_auth_method="client_secret_post",
        redirect_uri=REDIRECT_URI,
        scope="openid email organizations:read",
        code_challenge_method="S256",
    ) as client:
        verifier = generate_token(48)
        url, state = client.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier)
        page = control.get(url)
        assert page.status_code == 200
        assert "Dynamic app" in page.text

        decision = control.post(url, data={"user": DEMO_USER_EMAIL, "action": "allow"})
        assert decision.status_code == 302, decision.text
        location = decision.headers["location"]
        assert location.startswith(REDIRECT_URI + "?")
        assert query_of(location)["state"] == state

        token = client.fetch_token(
            meta["token_endpoint"], authorization_response=location, code_verifier=verifier, state=state
        )
        assert token["access_token"].startswith("polar_at_u_")
        assert token["refresh_token"].startswith("polar_rt_u_")
        assert token["expires_in"] == 864000
        assert token["scope"] == "openid email organizations:read"
        assert "id_token" in token

        info = client.get(meta["userinfo_endpoint"])
        assert info.status_code == 200
        assert info.json()["email"] == DEMO_USER_EMAIL

        refreshed = client.refresh_token(meta["token_endpoint"], refresh_token=token["refresh_token"])
        assert refreshed["expires_in"] == 3600

    stored = emulator.store.tokens_by_access[token["access_token"]]
    assert stored.client_id == reg["client_id"]


def test_registered_auth_method_is_enforced(control: httpx.Client) -> None:
    reg = registered(control, scope="openid email")
    code = get_code(control, client_id=reg["client_id"], redirect_uri=REDIRECT_URI, scope="openid email")
    # client_secret_basic is not what the client registered: 401 invalid_client.
    response = control.post(
        "/v1/oauth2/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI},
        auth=(reg["client_id"], reg["client_secret"]),
    )
    assert_oauth_error(response, 401, "invalid_client")
    # The scope is capped at the registered one.
    code = get_code(
        control, client_id=reg["client_id"], redirect_uri=REDIRECT_URI, scope="openid email products:read"
    )
    response = exchange(
        control,
        code,
        client_id=reg["client_id"],
        client_secret=reg["client_secret"],
        redirect_uri=REDIRECT_URI,
    )
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "openid email"


def test_public_client_gets_no_secret_and_needs_pkce(control: httpx.Client) -> None:
    reg = registered(control, token_endpoint_auth_method="none", scope="openid email")
    assert reg["token_endpoint_auth_method"] == "none"
    assert "client_secret" not in reg
    assert "client_secret_expires_at" not in reg
    assert reg["client_id"].startswith("polar_ci_")
    assert reg["registration_access_token"].startswith("polar_crt_")

    params = {"client_id": reg["client_id"], "redirect_uri": REDIRECT_URI, "scope": "openid email"}
    # Without PKCE the code exchange is refused.
    code = get_code(control, **params)
    response = exchange(
        control, code, client_id=reg["client_id"], client_secret=None, redirect_uri=REDIRECT_URI
    )
    assert_oauth_error(response, 400, "invalid_request", "Missing 'code_verifier'")

    verifier, challenge = pkce_pair()
    code = get_code(control, code_challenge=challenge, code_challenge_method="S256", **params)
    response = exchange(
        control,
        code,
        client_id=reg["client_id"],
        client_secret=None,
        redirect_uri=REDIRECT_URI,
        code_verifier=verifier,
    )
    assert response.status_code == 200, response.text
    assert response.json()["access_token"].startswith("polar_at_u_")

    # Reading it back does not reveal the (hidden) secret either.
    read = control.get(reg["registration_client_uri"], headers=bearer(reg["registration_access_token"]))
    assert read.status_code == 200
    assert "client_secret" not in read.json()
    assert "client_secret_expires_at" not in read.json()


def test_read_update_and_delete_with_the_registration_token(
    emulator: EmulatorServer, control: httpx.Client
) -> None:
    reg = registered(control, scope="openid email")
    uri, headers = reg["registration_client_uri"], bearer(reg["registration_access_token"])

    read = control.get(uri, headers=headers)
    assert read.status_code == 200
    assert read.json() == reg

    new_redirect = "https://app.example.com/callback"
    update = control.put(
        uri,
        headers=headers,
        json={
            "client_id": reg["client_id"],
            "client_name": "Renamed app",
            "redirect_uris": [new_redirect],
            "scope": "openid email products:read",
        },
    )
    assert update.status_code == 200, update.text
    updated = update.json()
    assert updated["client_name"] == "Renamed app"
    assert updated["redirect_uris"] == [new_redirect]
    assert updated["scope"] == "openid email products:read"
    assert updated["client_id"] == reg["client_id"]
    assert updated["client_secret"] == reg["client_secret"]
    assert updated["registration_access_token"] == reg["registration_access_token"]
    assert control.get(uri, headers=headers).json() == updated

    # The old redirect URI no longer matches; the new one does.
    old = control.get(
        "/oauth2/authorize",
        params={"response_type": "code", "client_id": reg["client_id"], "redirect_uri": REDIRECT_URI},
    )
    assert_oauth_error(old, 400, "invalid_request")
    code = get_code(control, client_id=reg["client_id"], redirect_uri=new_redirect, scope="openid email")
    tokens = exchange(
        control,
        code,
        client_id=reg["client_id"],
        client_secret=reg["client_secret"],
        redirect_uri=new_redirect,
    )
    assert tokens.status_code == 200, tokens.text
    access_token = tokens.json()["access_token"]
    assert userinfo(control, access_token).status_code == 200
    pending = get_code(control, client_id=reg["client_id"], redirect_uri=new_redirect, scope="openid email")

    deleted = control.delete(uri, headers=headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert reg["client_id"] not in emulator.store.clients

    # Gone: its configuration, its tokens and its pending codes.
    assert_oauth_error(control.get(uri, headers=headers), 401, "invalid_client")
    assert_oauth_error(control.delete(uri, headers=headers), 401, "invalid_client")
    assert userinfo(control, access_token).status_code == 401
    late = exchange(
        control,
        pending,
        client_id=reg["client_id"],
        client_secret=reg["client_secret"],
        redirect_uri=new_redirect,
    )
    # An unknown client sending client_secret_post: Authlib's 400 (401 is for basic auth).
    assert_oauth_error(late, 400, "invalid_client", "The client does not exist on this server.")


def test_update_rules(control: httpx.Client) -> None:
    reg = registered(control)
    uri, headers = reg["registration_client_uri"], bearer(reg["registration_access_token"])
    body = {"client_id": reg["client_id"], "client_name": "X", "redirect_uris": [REDIRECT_URI]}

    mismatch = control.put(uri, headers=headers, json={**body, "client_id": DEMO_CLIENT_ID})
    assert_oauth_error(mismatch, 400, "invalid_request")

    missing = control.put(uri, headers=headers, json={k: v for k, v in body.items() if k != "client_id"})
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "client_id"]

    insecure = control.put(uri, headers=headers, json={**body, "redirect_uris": ["http://example.com/cb"]})
    assert insecure.status_code == 422

    unknown_scope = control.put(uri, headers=headers, json={**body, "scope": "openid nope"})
    assert_oauth_error(unknown_scope, 400, "invalid_client_metadata")
    assert control.get(uri, headers=headers).json()["client_name"] == "Registered app"


def test_bad_registration_token(control: httpx.Client) -> None:
    reg = registered(control)
    other = registered(control, client_name="Other")
    uri = reg["registration_client_uri"]

    for headers in (
        bearer("polar_crt_not-the-token"),
        bearer(other["registration_access_token"]),  # valid, but for another client
    ):
        for method in ("GET", "DELETE"):
            response = control.request(method, uri, headers=headers)
            assert_oauth_error(response, 401, "invalid_client", "The client does not exist on this server.")
            assert response.headers["www-authenticate"].startswith('Basic error="invalid_client"')
        response = control.put(
            uri,
            headers=headers,
            json={"client_id": reg["client_id"], "client_name": "X", "redirect_uris": []},
        )
        assert_oauth_error(response, 401, "invalid_client")

    # A token with non-ASCII characters (latin-1 bytes in the header) is refused, never a 500.
    latin = {"Authorization": "Bearer polar_crt_s\u00e9cret".encode("latin-1")}
    assert_oauth_error(control.get(uri, headers=latin), 401, "invalid_client")

    # Unknown client, or a client with no registration token (the seeded demo client).
    unknown = control.get(
        f"{REGISTER_URL}/polar_ci_unknown", headers=bearer(reg["registration_access_token"])
    )
    assert_oauth_error(unknown, 401, "invalid_client")
    demo = control.get(f"{REGISTER_URL}/{DEMO_CLIENT_ID}", headers=bearer(reg["registration_access_token"]))
    assert_oauth_error(demo, 401, "invalid_client")

    # No token at all, or not a Bearer one: access_denied (400), as Authlib answers.
    assert_oauth_error(control.get(uri), 400, "access_denied")
    assert_oauth_error(control.get(uri, headers={"Authorization": "Basic abc"}), 400, "access_denied")

    # Nothing changed.
    assert control.get(uri, headers=bearer(reg["registration_access_token"])).json() == reg


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://example.com/callback",
        "http://localhost.evil/callback",
        "http://localhostevil/callback",
        "http://localhost./callback",
        "http://8.8.8.8/callback",
        "foobar",
    ],
)
def test_http_redirect_to_a_public_host_is_refused(control: httpx.Client, redirect_uri: str) -> None:
    response = register(control, redirect_uris=["https://ok.example.com/cb", redirect_uri])
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "RequestValidationError"
    assert [item["loc"] for item in body["detail"]] == [["body", "redirect_uris", 1]]


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://example.com/callback",
        "http://localhost:8000/callback",
        "http://foo.localhost:8000/callback",
        "http://127.0.0.1:8000/callback",
        "http://192.168.1.20/callback",
        "http://10.0.0.5/callback",
    ],
)
def test_https_or_local_redirects_are_accepted(control: httpx.Client, redirect_uri: str) -> None:
    assert registered(control, redirect_uris=[redirect_uri])["redirect_uris"] == [redirect_uri]


def test_http_refusal_message(control: httpx.Client) -> None:
    response = register(control, redirect_uris=["http://example.com/callback"])
    assert response.status_code == 422
    item = response.json()["detail"][0]
    assert item["type"] == "value_error"
    assert item["msg"] == "Value error, An HTTPS URL is required."


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("grant_types", ["client_credentials"]),
        ("grant_types", ["authorization_code", "implicit"]),
        ("grant_types", ["web"]),
        ("response_types", ["token"]),
        ("token_endpoint_auth_method", "private_key_jwt"),
    ],
)
def test_unsupported_grant_types_and_methods_are_refused(
    emulator: EmulatorServer, control: httpx.Client, field: str, value: Any
) -> None:
    before = set(emulator.store.clients)
    response = register(control, **{field: value})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][:2] == ["body", field]
    assert set(emulator.store.clients) == before


def test_missing_required_fields(control: httpx.Client) -> None:
    response = control.post(REGISTER_URL, json={"redirect_uris": [REDIRECT_URI]})
    assert response.status_code == 422
    assert [item["loc"] for item in response.json()["detail"]] == [["body", "client_name"]]
    response = control.post(REGISTER_URL, json={"client_name": "No URIs"})
    assert response.status_code == 422
    assert [item["loc"] for item in response.json()["detail"]] == [["body", "redirect_uris"]]


@pytest.mark.parametrize(
    ("body", "claim"),
    [
        ({"scope": "openid not-a-scope"}, "scope"),
        # Known to Polar, but not advertised: not registrable.
        ({"scope": "openid organization_access_tokens:read"}, "scope"),
        ({"redirect_uris": ["https://app.example.com/cb#fragment"]}, "redirect_uris"),
        ({"client_uri": "not a url"}, "client_uri"),
    ],
)
def test_invalid_client_metadata(
    emulator: EmulatorServer, control: httpx.Client, body: dict[str, Any], claim: str
) -> None:
    before = set(emulator.store.clients)
    response = register(control, **body)
    assert_oauth_error(response, 400, "invalid_client_metadata", f"Invalid claim: '{claim}'")
    assert set(emulator.store.clients) == before
