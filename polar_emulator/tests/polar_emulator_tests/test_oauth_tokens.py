"""Token lifecycle: refresh rotation, organization down-scoping, introspection, revocation,
the revoke-user control endpoint, and concurrent refreshes of one token."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from polar_emulator import EmulatorServer
from polar_emulator.config import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_USER_EMAIL, MULTI_ORG_USER_EMAIL

from .oauth_support import (
    advance_clock,
    credentials,
    exchange,
    get_code,
    introspect,
    new_client,
    org_ids,
    refresh,
    revoke,
    tokens,
    userinfo,
)

INACTIVE = {"active": False}


def _assert_invalid_grant(response: httpx.Response) -> None:
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


# -- refresh ---------------------------------------------------------------------------------


def test_refresh_rotates_and_kills_the_old_pair_at_once(control: httpx.Client) -> None:
    first = tokens(control)
    assert userinfo(control, first["access_token"]).status_code == 200

    response = refresh(control, first["refresh_token"])
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["expires_in"] == 3600
    assert second["access_token"].startswith("polar_at_u_")
    assert second["refresh_token"].startswith("polar_rt_u_")
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["scope"] == first["scope"]

    # The old access token dies with the rotation, not at its own expiry.
    assert userinfo(control, first["access_token"]).status_code == 401
    assert introspect(control, first["access_token"]).json() == INACTIVE
    assert userinfo(control, second["access_token"]).status_code == 200

    # Reusing the old refresh token fails, and does not revoke the new pair.
    reuse = refresh(control, first["refresh_token"])
    _assert_invalid_grant(reuse)
    assert userinfo(control, second["access_token"]).status_code == 200
    assert refresh(control, second["refresh_token"]).status_code == 200


def test_refresh_may_narrow_scope_but_not_widen_it(control: httpx.Client) -> None:
    first = tokens(control, scope="openid email products:read")
    wider = refresh(control, first["refresh_token"], scope="openid email products:read products:write")
    assert wider.status_code == 400
    assert wider.json()["error"] == "invalid_scope"
    narrower = refresh(control, first["refresh_token"], scope="products:read")
    assert narrower.status_code == 200, narrower.text
    assert narrower.json()["scope"] == "products:read"
    assert introspect(control, narrower.json()["access_token"]).json()["scope"] == "products:read"


def test_refresh_tokens_outlive_their_access_token(control: httpx.Client) -> None:
    first = tokens(control)
    advance_clock(control, 864000 + 60)
    assert userinfo(control, first["access_token"]).status_code == 401
    # Introspection follows the access token's expiry, even for the refresh token.
    assert introspect(control, first["refresh_token"]).json() == INACTIVE
    response = refresh(control, first["refresh_token"])
    assert response.status_code == 200
    assert userinfo(control, response.json()["access_token"]).status_code == 200


def test_refresh_by_another_client_is_invalid_grant(control: httpx.Client) -> None:
    first = tokens(control)
    other = new_client(control)
    response = refresh(control, first["refresh_token"], **credentials(other))
    _assert_invalid_grant(response)
    assert refresh(control, first["refresh_token"]).status_code == 200


def race(
    emulator: EmulatorServer, workers: int, send: Callable[[httpx.Client], httpx.Response]
) -> list[httpx.Response]:
    """``send`` from ``workers`` threads at once (a barrier releases them), each with its own client."""
    barrier = threading.Barrier(workers)

    def attempt(_: int) -> httpx.Response:
        with httpx.Client(base_url=emulator.url, timeout=10) as http:
            barrier.wait()
            return send(http)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(attempt, range(workers)))


def test_parallel_refreshes_of_one_token_exactly_one_wins(
    emulator: EmulatorServer, control: httpx.Client
) -> None:
    first = tokens(control)
    workers = 8
    responses = race(emulator, workers, lambda http: refresh(http, first["refresh_token"]))

    winners = [r for r in responses if r.status_code == 200]
    losers = [r for r in responses if r.status_code != 200]
    assert len(winners) == 1
    assert len(losers) == workers - 1
    assert all(r.status_code == 400 and r.json()["error"] == "invalid_grant" for r in losers)
    new = winners[0].json()
    assert userinfo(control, new["access_token"]).status_code == 200
    assert userinfo(control, first["access_token"]).status_code == 401
    # Exactly one new row was made.
    assert len(emulator.store.tokens_by_access) == 2


def test_parallel_exchanges_of_one_code_exactly_one_wins(
    emulator: EmulatorServer, control: httpx.Client
) -> None:
    code = get_code(control)
    workers = 8
    statuses = sorted(r.status_code for r in race(emulator, workers, lambda http: exchange(http, code)))
    assert statuses == [200] + [400] * (workers - 1)
    assert len(emulator.store.tokens_by_access) == 1


# -- organizations ---------------------------------------------------------------------------


def test_no_organization_chosen_means_all(control: httpx.Client) -> None:
    body = tokens(control, user=MULTI_ORG_USER_EMAIL)
    assert introspect(control, body["access_token"]).json()["organizations"] == []


def test_chosen_organizations_narrow_the_token_and_survive_refresh(
    emulator: EmulatorServer, control: httpx.Client
) -> None:
    acme, labs = org_ids(emulator, MULTI_ORG_USER_EMAIL)
    body = tokens(control, user=MULTI_ORG_USER_EMAIL, organizations=[labs])
    assert introspect(control, body["access_token"]).json()["organizations"] == [labs]

    refreshed = refresh(control, body["refresh_token"]).json()
    assert introspect(control, refreshed["access_token"]).json()["organizations"] == [labs]

    both = tokens(control, user=MULTI_ORG_USER_EMAIL, organizations=[acme, labs])
    assert sorted(introspect(control, both["access_token"]).json()["organizations"]) == sorted([acme, labs])


def test_sub_type_organization_issues_a_user_token_narrowed_to_one_org(
    emulator: EmulatorServer, control: httpx.Client
) -> None:
    acme, _ = org_ids(emulator, MULTI_ORG_USER_EMAIL)
    body = tokens(control, user=MULTI_ORG_USER_EMAIL, organizations=[acme], sub_type="organization")
    assert body["access_token"].startswith("polar_at_u_")
    data = introspect(control, body["access_token"]).json()
    assert data["sub_type"] == "user"
    assert data["sub"] == emulator.store.user_by_email(MULTI_ORG_USER_EMAIL).id
    assert data["organizations"] == [acme]


# -- introspection ---------------------------------------------------------------------------


def test_introspect_inactive_is_exactly_active_false(control: httpx.Client) -> None:
    body = tokens(control)
    other = new_client(control)
    # Another client's token looks unknown.
    assert introspect(control, body["access_token"], **credentials(other)).json() == INACTIVE
    assert introspect(control, "polar_at_u_unknown").json() == INACTIVE
    revoke(control, body["access_token"])
    assert introspect(control, body["access_token"]).json() == INACTIVE
    expired = tokens(control)
    advance_clock(control, 864001)
    response = introspect(control, expired["access_token"])
    assert response.status_code == 200
    assert response.json() == INACTIVE


def test_public_clients_cannot_introspect_or_revoke(control: httpx.Client) -> None:
    client = new_client(control, public=True)
    for path in ("/v1/oauth2/introspect", "/v1/oauth2/revoke"):
        response = control.post(path, data={"token": "x", "client_id": client["client_id"]})
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"


# -- revocation ------------------------------------------------------------------------------


def test_revoke_unknown_token_is_200_empty(control: httpx.Client) -> None:
    response = revoke(control, "polar_at_u_never_issued")
    assert response.status_code == 200
    assert response.json() == {}


def test_revoke_access_token_hint_also_disables_the_refresh_token(
    emulator: EmulatorServer, control: httpx.Client
) -> None:
    body = tokens(control)
    assert revoke(control, body["access_token"], token_type_hint="access_token").json() == {}
    row = emulator.store.tokens_by_access[body["access_token"]]
    assert row.access_token_revoked_at is not None
    assert row.refresh_token_revoked_at is None
    assert userinfo(control, body["access_token"]).status_code == 401
    response = refresh(control, body["refresh_token"])
    _assert_invalid_grant(response)


def test_revoke_refresh_token_revokes_both_halves(emulator: EmulatorServer, control: httpx.Client) -> None:
    for hint in (None, "refresh_token"):
        body = tokens(control)
        extra = {"token_type_hint": hint} if hint else {}
        assert revoke(control, body["refresh_token"], **extra).status_code == 200
        row = emulator.store.tokens_by_refresh[body["refresh_token"]]
        assert row.access_token_revoked_at is not None
        assert row.refresh_token_revoked_at is not None
        assert userinfo(control, body["access_token"]).status_code == 401
        assert refresh(control, body["refresh_token"]).status_code == 400


def test_revoke_with_basic_auth(control: httpx.Client) -> None:
    body = tokens(control)
    response = control.post(
        "/v1/oauth2/revoke", data={"token": body["access_token"]}, auth=(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    )
    assert response.status_code == 200
    assert userinfo(control, body["access_token"]).status_code == 401


def test_revoke_another_clients_token_is_invalid_grant(control: httpx.Client) -> None:
    body = tokens(control)
    other = new_client(control)
    response = revoke(control, body["access_token"], **credentials(other))
    _assert_invalid_grant(response)
    assert userinfo(control, body["access_token"]).status_code == 200


def test_revoke_bad_hint(control: httpx.Client) -> None:
    """Authlib answers unsupported_token_type with 401 (it is a ForbiddenError)."""
    body = tokens(control)
    response = revoke(control, body["access_token"], token_type_hint="id_token")
    assert response.status_code == 401
    assert response.json()["error"] == "unsupported_token_type"


# -- control: revoke every token of a user ---------------------------------------------------


def test_revoke_user_control_endpoint(control: httpx.Client) -> None:
    demo_a = tokens(control, user=DEMO_USER_EMAIL)
    demo_b = tokens(control, user=DEMO_USER_EMAIL)
    multi = tokens(control, user=MULTI_ORG_USER_EMAIL)

    response = control.post("/_emulator/tokens/revoke-user", json={"email": DEMO_USER_EMAIL})
    assert response.status_code == 200
    assert response.json() == {"revoked": 2}
    for body in (demo_a, demo_b):
        assert userinfo(control, body["access_token"]).status_code == 401
        assert refresh(control, body["refresh_token"]).status_code == 400
    assert userinfo(control, multi["access_token"]).status_code == 200

    missing = control.post("/_emulator/tokens/revoke-user", json={"email": "nobody@polar.local"})
    assert missing.status_code == 404
