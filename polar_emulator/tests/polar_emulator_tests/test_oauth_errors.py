"""Every way the authorize and token legs refuse a request, with Polar's error shapes."""

from __future__ import annotations

import httpx
import pytest

from polar_emulator import EmulatorServer
from polar_emulator.config import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_REDIRECT_URI,
    DEMO_USER_EMAIL,
    MULTI_ORG_USER_EMAIL,
)

from .oauth_support import (
    TOKEN_URL,
    advance_clock,
    authorize_params,
    consent,
    exchange,
    get_code,
    grant,
    new_client,
    org_ids,
    pkce_pair,
    query_of,
    tokens,
    userinfo,
)

INVALID_TOKEN = {
    "error": "invalid_token",
    "error_description": "The access token provided is expired, revoked, malformed, or invalid for other reasons.",
}


def _assert_oauth_error(
    response: httpx.Response, status: int, error: str, description: str | None = None
) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert "location" not in response.headers
    if description is not None:
        assert body["error_description"] == description


def _assert_redirected_error(response: httpx.Response, error: str) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(DEMO_REDIRECT_URI + "?")
    query = query_of(location)
    assert query["error"] == error
    assert query["state"] == "state-123"
    return query


# -- authorize leg ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_unknown_client_is_a_json_400_never_a_redirect(control: httpx.Client, method: str) -> None:
    params = authorize_params(client_id="polar_ci_unknown")
    if method == "GET":
        response = control.get("/oauth2/authorize", params=params)
    else:
        response = consent(control, client_id="polar_ci_unknown")
    _assert_oauth_error(response, 400, "invalid_client")


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_unregistered_redirect_uri_is_a_json_400(control: httpx.Client, method: str) -> None:
    evil = "https://evil.example/cb"
    if method == "GET":
        response = control.get("/oauth2/authorize", params=authorize_params(redirect_uri=evil))
    else:
        response = consent(control, redirect_uri=evil)
    _assert_oauth_error(response, 400, "invalid_request")
    assert evil in response.json()["error_description"]


def test_unsupported_response_type_is_redirected(control: httpx.Client) -> None:
    response = control.get("/oauth2/authorize", params=authorize_params(response_type="token"))
    query = _assert_redirected_error(response, "unsupported_response_type")
    assert query["error_description"] == "response_type=token is not supported"


def test_unknown_scope_is_redirected(control: httpx.Client) -> None:
    response = control.get("/oauth2/authorize", params=authorize_params(scope="openid bogus:scope"))
    query = _assert_redirected_error(response, "invalid_scope")
    assert query["error_description"]


def test_reserved_scopes_are_known_at_authorize_time(control: httpx.Client) -> None:
    """Checked against all 63 scopes, so the two unadvertised ones are not invalid_scope; the
    demo client lacks them, so the token silently goes without."""
    params = {"scope": "openid organization_access_tokens:read"}
    assert control.get("/oauth2/authorize", params=authorize_params(**params)).status_code == 200
    assert tokens(control, **params)["scope"] == "openid"


@pytest.mark.parametrize(
    "extra",
    [
        {"code_challenge": "a" * 43, "code_challenge_method": "S512"},
        {"code_challenge": "too-short", "code_challenge_method": "S256"},
        {"code_challenge_method": "S256"},
    ],
)
def test_bad_code_challenge_is_redirected(control: httpx.Client, extra: dict[str, str]) -> None:
    response = control.get("/oauth2/authorize", params=authorize_params(**extra))
    query = _assert_redirected_error(response, "invalid_request")
    assert query["error_description"]


def test_deny_redirects_access_denied(control: httpx.Client) -> None:
    response = consent(control, action="deny")
    query = _assert_redirected_error(response, "access_denied")
    assert "code" not in query


def test_organization_the_user_cannot_reach(emulator: EmulatorServer, control: httpx.Client) -> None:
    other = org_ids(emulator, MULTI_ORG_USER_EMAIL)[0]
    response = consent(control, user=DEMO_USER_EMAIL, organizations=[other])
    _assert_oauth_error(response, 400, "invalid_request", f"Organization {other} is not accessible.")
    assert not emulator.store.codes


def test_sub_type_organization_needs_exactly_one_organization(
    emulator: EmulatorServer, control: httpx.Client
) -> None:
    both = org_ids(emulator, MULTI_ORG_USER_EMAIL)
    for chosen in ([], both):
        response = consent(control, user=MULTI_ORG_USER_EMAIL, organizations=chosen, sub_type="organization")
        _assert_oauth_error(response, 400, "invalid_request")
    ok = consent(control, user=MULTI_ORG_USER_EMAIL, organizations=both[:1], sub_type="organization")
    assert ok.status_code == 302


def test_invalid_sub_type_and_unknown_user(control: httpx.Client) -> None:
    _assert_oauth_error(consent(control, sub_type="team"), 400, "invalid_request", "Invalid sub_type")
    _assert_oauth_error(consent(control, user="nobody@polar.local"), 400, "invalid_request")
    _assert_oauth_error(consent(control, action="maybe"), 400, "invalid_request")


def test_prompt_none_is_login_required(control: httpx.Client) -> None:
    response = control.get("/oauth2/authorize", params=authorize_params(prompt="none"))
    _assert_redirected_error(response, "login_required")


# -- token leg: codes ------------------------------------------------------------------------


def test_code_is_single_use(control: httpx.Client) -> None:
    code = get_code(control)
    first = exchange(control, code)
    assert first.status_code == 200
    again = exchange(control, code)
    _assert_oauth_error(again, 400, "invalid_grant", "Invalid 'code' in request.")
    # Tokens already issued from the code stay valid.
    assert userinfo(control, first.json()["access_token"]).status_code == 200


def test_code_expires_after_five_minutes(control: httpx.Client) -> None:
    code = get_code(control)
    advance_clock(control, 301)
    _assert_oauth_error(exchange(control, code), 400, "invalid_grant", "Invalid 'code' in request.")


def test_code_still_valid_just_before_five_minutes(control: httpx.Client) -> None:
    code = get_code(control)
    advance_clock(control, 290)
    assert exchange(control, code).status_code == 200


def test_redirect_uri_must_match(control: httpx.Client) -> None:
    code = get_code(control)
    response = exchange(control, code, redirect_uri="http://127.0.0.1:5000/other")
    _assert_oauth_error(response, 400, "invalid_grant", "Invalid 'redirect_uri' in request.")


def test_code_of_another_client(control: httpx.Client) -> None:
    other = new_client(control)
    code = get_code(control)
    response = exchange(control, code, client_id=other["client_id"], client_secret=other["client_secret"])
    _assert_oauth_error(response, 400, "invalid_grant", "Invalid 'code' in request.")


def test_basic_auth_on_a_client_secret_post_client_is_401(control: httpx.Client) -> None:
    code = get_code(control)
    response = control.post(
        TOKEN_URL,
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": DEMO_REDIRECT_URI},
        auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET),
    )
    _assert_oauth_error(response, 401, "invalid_client")
    assert "client_secret_basic" in response.json()["error_description"]
    assert response.headers["www-authenticate"].startswith("Basic ")
    # The code was not consumed.
    assert exchange(control, code).status_code == 200


def test_wrong_secret_is_401_unknown_client_400(control: httpx.Client) -> None:
    """Authlib's quirk: an unknown client_id in the form fails at once with 400."""
    code = get_code(control)
    _assert_oauth_error(exchange(control, code, client_secret="polar_cs_wrong"), 401, "invalid_client")
    _assert_oauth_error(
        exchange(control, code, client_id="polar_ci_nope"),
        400,
        "invalid_client",
        "The client does not exist on this server.",
    )


@pytest.mark.parametrize("path", [TOKEN_URL, "/v1/oauth2/introspect", "/v1/oauth2/revoke"])
@pytest.mark.parametrize("secret", ["polar_cs_s\u00e9cret", "\u79d8\u5bc6", DEMO_CLIENT_SECRET + "\u00e9"])
def test_non_ascii_client_secret_is_invalid_client(control: httpx.Client, path: str, secret: str) -> None:
    """Once a 500 (``hmac.compare_digest`` refuses non-ASCII ``str``); Authlib answers 401."""
    tokens_now = tokens(control)
    data = {
        "grant_type": "refresh_token",
        "refresh_token": tokens_now["refresh_token"],
        "token": tokens_now["access_token"],
        "client_id": DEMO_CLIENT_ID,
        "client_secret": secret,
    }
    _assert_oauth_error(control.post(path, data=data), 401, "invalid_client")
    if path != TOKEN_URL:  # introspection and revocation also take client_secret_basic
        basic = control.post(path, data={"token": tokens_now["access_token"]}, auth=(DEMO_CLIENT_ID, secret))
        _assert_oauth_error(basic, 401, "invalid_client")
    # Nothing was refreshed or revoked.
    assert userinfo(control, tokens_now["access_token"]).status_code == 200


def test_confidential_client_cannot_skip_its_secret(control: httpx.Client) -> None:
    code = get_code(control)
    _assert_oauth_error(exchange(control, code, client_secret=None), 401, "invalid_client")


def test_public_client_must_send_a_verifier(control: httpx.Client) -> None:
    client = new_client(control, public=True)
    verifier, challenge = pkce_pair()
    code = get_code(
        control, client_id=client["client_id"], code_challenge=challenge, code_challenge_method="S256"
    )
    response = exchange(control, code, client_id=client["client_id"], client_secret=None)
    _assert_oauth_error(response, 400, "invalid_request", "Missing 'code_verifier'")


def test_public_client_without_any_pkce(control: httpx.Client) -> None:
    client = new_client(control, public=True)
    code = get_code(control, client_id=client["client_id"])
    response = exchange(control, code, client_id=client["client_id"], client_secret=None)
    _assert_oauth_error(response, 400, "invalid_request", "Missing 'code_verifier'")


def test_public_client_cannot_use_a_secret_method(control: httpx.Client) -> None:
    client = new_client(control, public=True)
    code = get_code(control, client_id=client["client_id"])
    response = exchange(control, code, client_id=client["client_id"], client_secret="polar_cs_made_up")
    _assert_oauth_error(response, 401, "invalid_client")


def test_wrong_verifier(control: httpx.Client) -> None:
    _, challenge = pkce_pair()
    other_verifier, _ = pkce_pair()
    code = get_code(control, code_challenge=challenge, code_challenge_method="S256")
    response = exchange(control, code, code_verifier=other_verifier)
    _assert_oauth_error(response, 400, "invalid_grant", "Code challenge failed.")


def test_challenge_sent_so_verifier_is_mandatory(control: httpx.Client) -> None:
    _, challenge = pkce_pair()
    code = get_code(control, code_challenge=challenge, code_challenge_method="S256")
    _assert_oauth_error(exchange(control, code), 400, "invalid_request", "Missing 'code_verifier'")


def test_verifier_without_challenge_is_rejected(control: httpx.Client) -> None:
    verifier, _ = pkce_pair()
    code = get_code(control)
    response = exchange(control, code, code_verifier=verifier)
    _assert_oauth_error(response, 400, "invalid_request")
    assert "code_challenge" in response.json()["error_description"]


def test_unsupported_grant_type(control: httpx.Client) -> None:
    response = grant(control, "client_credentials")
    _assert_oauth_error(response, 400, "unsupported_grant_type")


def test_missing_code(control: httpx.Client) -> None:
    response = grant(control, "authorization_code")
    _assert_oauth_error(response, 400, "invalid_request", "Missing 'code' in request.")


# -- bearer tokens on the API ----------------------------------------------------------------


def _assert_invalid_token(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.json() == INVALID_TOKEN
    header = response.headers["www-authenticate"]
    assert header.startswith('Bearer realm="polar", error="invalid_token"')


def test_malformed_bearer(control: httpx.Client) -> None:
    _assert_invalid_token(userinfo(control, "polar_at_u_not-a-real-token"))
    _assert_invalid_token(userinfo(control, "garbage"))


def test_expired_bearer(control: httpx.Client) -> None:
    body = tokens(control)
    advance_clock(control, 864000 + 1)
    _assert_invalid_token(userinfo(control, body["access_token"]))


def test_revoked_bearer(control: httpx.Client) -> None:
    body = tokens(control)
    assert (
        control.post(
            "/v1/oauth2/revoke",
            data={
                "token": body["access_token"],
                "client_id": DEMO_CLIENT_ID,
                "client_secret": DEMO_CLIENT_SECRET,
            },
        ).status_code
        == 200
    )
    _assert_invalid_token(userinfo(control, body["access_token"]))


def test_missing_bearer(control: httpx.Client) -> None:
    response = control.get("/v1/oauth2/userinfo")
    assert response.status_code == 401
    assert response.json() == {"error": "Unauthorized", "detail": "Unauthorized"}
    assert response.headers["www-authenticate"] == 'Bearer realm="polar"'
