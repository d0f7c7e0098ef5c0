"""The happy paths of the local Polar's OAuth2 / OpenID Connect server, over HTTP."""

from __future__ import annotations

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oidc.core.util import create_half_hash
from joserfc import jwt
from joserfc.jwk import KeySet

from polar_emulator import EmulatorServer
from polar_emulator.config import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_REDIRECT_URI,
    DEMO_USER_EMAIL,
    MULTI_ORG_USER_EMAIL,
)
from polar_emulator.domain.oauth import DEFAULT_CLIENT_SCOPE, SCOPES_SUPPORTED

from .oauth_support import (
    authorize_params,
    exchange,
    get_code,
    introspect,
    new_client,
    org_ids,
    pkce_pair,
    query_of,
    refresh,
    tokens,
    userinfo,
)


def test_discovery_metadata(emulator: EmulatorServer, control: httpx.Client) -> None:
    meta = control.get("/.well-known/openid-configuration").json()
    base = emulator.url
    assert meta["issuer"] == "https://polar.sh"
    assert meta["authorization_endpoint"] == f"{base}/oauth2/authorize"
    assert meta["token_endpoint"] == f"{base}/v1/oauth2/token"
    assert meta["introspection_endpoint"] == f"{base}/v1/oauth2/introspect"
    assert meta["revocation_endpoint"] == f"{base}/v1/oauth2/revoke"
    assert meta["userinfo_endpoint"] == f"{base}/v1/oauth2/userinfo"
    assert meta["jwks_uri"] == f"{base}/.well-known/jwks.json"
    assert meta["response_types_supported"] == ["code"]
    assert meta["response_modes_supported"] == ["query"]
    assert {"authorization_code", "refresh_token"} <= set(meta["grant_types_supported"])
    assert set(meta["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "none",
    }
    assert set(meta["introspection_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    assert set(meta["revocation_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    assert set(meta["code_challenge_methods_supported"]) == {"plain", "S256"}
    assert meta["scopes_supported"] == SCOPES_SUPPORTED
    assert len(meta["scopes_supported"]) == 61
    assert "organization_access_tokens:read" not in meta["scopes_supported"]
    assert meta["subject_types_supported"] == ["public"]
    assert meta["id_token_signing_alg_values_supported"] == ["RS256"]
    assert set(meta["claims_supported"]) == {"sub", "name", "email", "email_verified"}


def test_jwks_has_public_keys_only(control: httpx.Client) -> None:
    keys = control.get("/.well-known/jwks.json").json()["keys"]
    assert len(keys) == 1
    key = keys[0]
    assert key["kty"] == "RSA" and key["kid"] and key["alg"] == "RS256"
    assert {"n", "e"} <= set(key)
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)


def test_code_flow_with_authlib_client(emulator: EmulatorServer, control: httpx.Client) -> None:
    """The platform's way: Authlib client, client_secret_post, PKCE S256, nonce, id_token."""
    meta = control.get("/.well-known/openid-configuration").json()
    with OAuth2Client(
        client_id=DEMO_CLIENT_ID,
        client_secret=DEMO_CLIENT_SECRET,
        token_endpoint_auth_method="client_secret_post",
        redirect_uri=DEMO_REDIRECT_URI,
        scope="openid email organizations:read",
        code_challenge_method="S256",
    ) as client:
        verifier = generate_token(48)
        url, state = client.create_authorization_url(
            meta["authorization_endpoint"], code_verifier=verifier, nonce="nonce-1"
        )
        page = control.get(url)
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        assert "Connect Polar (local)" in page.text

        decision = control.post(url, data={"user": DEMO_USER_EMAIL, "action": "allow"})
        assert decision.status_code == 302
        location = decision.headers["location"]
        assert location.startswith(DEMO_REDIRECT_URI + "?")
        assert query_of(location)["code"].startswith("polar_ac_")
        assert query_of(location)["state"] == state

        token = client.fetch_token(
            meta["token_endpoint"], authorization_response=location, code_verifier=verifier, state=state
        )
        assert token["token_type"] == "Bearer"
        assert token["access_token"].startswith("polar_at_u_")
        assert token["refresh_token"].startswith("polar_rt_u_")
        assert token["expires_in"] == 864000
        assert token["scope"] == "openid email organizations:read"

        info = client.get(meta["userinfo_endpoint"])
        assert info.status_code == 200
        user = emulator.store.user_by_email(DEMO_USER_EMAIL)
        assert info.json() == {"sub": user.id, "email": DEMO_USER_EMAIL, "email_verified": True}

    # The id_token verifies against the published JWKS.
    keys = KeySet.import_key_set(control.get(meta["jwks_uri"]).json())
    decoded = jwt.decode(token["id_token"], keys, algorithms=["RS256"])
    assert decoded.header["alg"] == "RS256"
    assert decoded.header["kid"] == keys.keys[0].kid
    claims = decoded.claims
    assert claims["iss"] == "https://polar.sh"
    assert DEMO_CLIENT_ID in (claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]])
    assert claims["sub"] == user.id
    assert claims["nonce"] == "nonce-1"
    assert claims["email"] == DEMO_USER_EMAIL
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["at_hash"] == create_half_hash(token["access_token"], "RS256").decode()
    # A tampered token fails verification.
    header, payload, signature = token["id_token"].split(".")
    with pytest.raises(Exception):  # noqa: B017 - any joserfc signature error
        jwt.decode(f"{header}.{payload}.{signature[:-4]}AAAA", keys, algorithms=["RS256"])


def test_consent_page_lists_users_and_the_chosen_users_organizations(
    emulator: EmulatorServer, control: httpx.Client
) -> None:
    params = authorize_params(user=MULTI_ORG_USER_EMAIL)
    page = control.get("/oauth2/authorize", params=params)
    assert page.status_code == 200
    html = page.text
    assert f'<option value="{DEMO_USER_EMAIL}"' in html
    assert f'<option value="{MULTI_ORG_USER_EMAIL}" selected' in html
    for oid in org_ids(emulator, MULTI_ORG_USER_EMAIL):
        assert f'type="checkbox" name="organizations" value="{oid}"' in html
    for oid in org_ids(emulator, DEMO_USER_EMAIL):
        assert f'name="organizations" value="{oid}"' not in html
    assert 'name="action" value="allow"' in html and 'name="action" value="deny"' in html
    for scope in params["scope"].split():
        assert f"<li>{scope}</li>" in html

    single = control.get("/oauth2/authorize", params={**params, "sub_type": "organization"}).text
    assert 'type="radio" name="organizations"' in single
    assert 'type="checkbox"' not in single


def test_consent_page_escapes_client_name(control: httpx.Client) -> None:
    client = new_client(control, name="<script>alert(1)</script>")
    page = control.get("/oauth2/authorize", params=authorize_params(client_id=client["client_id"]))
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_consent_form_fields_work_without_a_query_string(control: httpx.Client) -> None:
    form = {**authorize_params(), "user": DEMO_USER_EMAIL, "action": "allow"}
    response = control.post("/oauth2/authorize", data=form)
    assert response.status_code == 302
    assert exchange(control, query_of(response.headers["location"])["code"]).status_code == 200


@pytest.mark.parametrize("method", ["S256", "plain"])
def test_public_client_with_pkce(control: httpx.Client, method: str) -> None:
    client = new_client(control, public=True)
    assert client["client_secret"] is None
    verifier, s256 = pkce_pair()
    challenge = s256 if method == "S256" else verifier
    code = get_code(
        control, client_id=client["client_id"], code_challenge=challenge, code_challenge_method=method
    )
    response = exchange(
        control, code, client_id=client["client_id"], client_secret=None, code_verifier=verifier
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["access_token"].startswith("polar_at_u_")
    # A public client refreshes with its client_id alone.
    again = control.post(
        "/v1/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": body["refresh_token"],
            "client_id": client["client_id"],
        },
    )
    assert again.status_code == 200, again.text
    assert again.json()["expires_in"] == 3600


def test_confidential_client_with_pkce(control: httpx.Client) -> None:
    verifier, challenge = pkce_pair()
    code = get_code(control, code_challenge=challenge, code_challenge_method="S256")
    assert exchange(control, code, code_verifier=verifier).status_code == 200


def test_missing_scope_means_the_clients_registered_scope(control: httpx.Client) -> None:
    body = tokens(control, scope=None)
    assert body["scope"] == DEFAULT_CLIENT_SCOPE
    assert "id_token" in body  # the default scope includes openid


def test_scopes_the_client_lacks_are_dropped(control: httpx.Client) -> None:
    client = new_client(control, scope="openid email products:read")
    code = get_code(control, client_id=client["client_id"], scope="email products:read products:write")
    response = exchange(control, code, client_id=client["client_id"], client_secret=client["client_secret"])
    assert response.status_code == 200
    assert response.json()["scope"] == "email products:read"


def test_id_token_only_with_openid_and_only_on_the_code_grant(control: httpx.Client) -> None:
    plain = tokens(control, scope="email products:read")
    assert "id_token" not in plain
    with_openid = tokens(control, scope="openid products:read")
    assert "id_token" in with_openid
    refreshed = refresh(control, with_openid["refresh_token"])
    assert refreshed.status_code == 200
    assert "id_token" not in refreshed.json()
    assert refreshed.json()["refresh_token"].startswith("polar_rt_u_")


def test_userinfo_without_email_scope_is_sub_only(emulator: EmulatorServer, control: httpx.Client) -> None:
    body = tokens(control, scope="openid products:read")
    user = emulator.store.user_by_email(DEMO_USER_EMAIL)
    assert userinfo(control, body["access_token"]).json() == {"sub": user.id}
    posted = control.post("/v1/oauth2/userinfo", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert posted.status_code == 200 and posted.json() == {"sub": user.id}


def test_token_response_headers(control: httpx.Client) -> None:
    response = exchange(control, get_code(control))
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    assert response.headers["content-type"] == "application/json"


def test_introspect_active_token(emulator: EmulatorServer, control: httpx.Client) -> None:
    body = tokens(control)
    data = introspect(control, body["access_token"]).json()
    user = emulator.store.user_by_email(DEMO_USER_EMAIL)
    assert set(data) == {
        "active",
        "client_id",
        "token_type",
        "scope",
        "sub_type",
        "sub",
        "organizations",
        "aud",
        "iss",
        "exp",
        "iat",
    }
    assert data["active"] is True
    assert data["client_id"] == data["aud"] == DEMO_CLIENT_ID
    assert data["token_type"] == "Bearer"
    assert data["scope"] == body["scope"]
    assert data["sub_type"] == "user" and data["sub"] == user.id
    assert data["organizations"] == []
    assert data["iss"] == "https://polar.sh"
    assert data["exp"] - data["iat"] == 864000
    # The refresh token introspects as the same row; HTTP Basic works too.
    by_refresh = control.post(
        "/v1/oauth2/introspect",
        data={"token": body["refresh_token"], "token_type_hint": "refresh_token"},
        auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
    )
    assert by_refresh.json() == data


def test_authlib_client_refresh_introspect_and_revoke(
    emulator: EmulatorServer, control: httpx.Client
) -> None:
    """The platform's token-endpoint calls, all through Authlib with client_secret_post."""
    verifier, challenge = pkce_pair()
    code = get_code(control, code_challenge=challenge, code_challenge_method="S256")
    base = emulator.url
    with OAuth2Client(
        client_id=DEMO_CLIENT_ID,
        client_secret=DEMO_CLIENT_SECRET,
        token_endpoint_auth_method="client_secret_post",
        revocation_endpoint_auth_method="client_secret_post",
        redirect_uri=DEMO_REDIRECT_URI,
    ) as client:
        first = client.fetch_token(
            f"{base}/v1/oauth2/token", grant_type="authorization_code", code=code, code_verifier=verifier
        )
        second = client.refresh_token(f"{base}/v1/oauth2/token", refresh_token=first["refresh_token"])
        assert second["expires_in"] == 3600
        assert second["refresh_token"] != first["refresh_token"]

        active = client.introspect_token(f"{base}/v1/oauth2/introspect", token=second["access_token"])
        assert active.status_code == 200 and active.json()["active"] is True
        stale = client.introspect_token(f"{base}/v1/oauth2/introspect", token=first["access_token"])
        assert stale.json() == {"active": False}

        revoked = client.revoke_token(f"{base}/v1/oauth2/revoke", token=second["refresh_token"])
        assert revoked.status_code == 200 and revoked.json() == {}
        gone = client.introspect_token(f"{base}/v1/oauth2/introspect", token=second["access_token"])
        assert gone.json() == {"active": False}
