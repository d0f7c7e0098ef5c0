"""Many clients at once, over real HTTP: each call's change is atomic, none is lost."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from polar_emulator import EmulatorServer
from polar_emulator_tests.resource_helpers import demo_token, org_id, product_body

N = 24


def _at_once(n: int, fn) -> list[Any]:
    """Run ``fn(i)`` in ``n`` threads released together by a barrier."""
    barrier = threading.Barrier(n)

    def run(i: int) -> Any:
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def _client(emulator: EmulatorServer, token: str) -> httpx.Client:
    return httpx.Client(base_url=emulator.url, headers={"Authorization": f"Bearer {token}"}, timeout=20)


def test_parallel_creates_all_land_and_the_list_counts_each_once(emulator, issue_token):
    token, org = demo_token(emulator, issue_token), org_id(emulator, "demo-org")

    def create(i: int) -> int:
        with _client(emulator, token) as client:
            return client.post("/v1/products/", json=product_body(org, name=f"Plan {i:02d}")).status_code

    assert _at_once(N, create) == [201] * N
    with _client(emulator, token) as client:
        listed = client.get("/v1/products/", params={"organization_id": org, "limit": 100}).json()
    assert listed["pagination"]["total_count"] == N
    assert sorted(p["name"] for p in listed["items"]) == [f"Plan {i:02d}" for i in range(N)]


def test_parallel_creates_of_one_customer_email_exactly_one_wins(emulator, issue_token):
    token, org = demo_token(emulator, issue_token), org_id(emulator, "demo-org")

    def create(_: int) -> int:
        with _client(emulator, token) as client:
            body = {"email": "same@example.com", "organization_id": org}
            return client.post("/v1/customers/", json=body).status_code

    assert Counter(_at_once(N, create)) == {201: 1, 422: N - 1}


def test_parallel_ingest_of_one_external_id_is_inserted_once(emulator, issue_token):
    token, org = demo_token(emulator, issue_token), org_id(emulator, "demo-org")
    with _client(emulator, token) as client:
        assert (
            client.post(
                "/v1/customers/", json={"email": "u@example.com", "external_id": "u1", "organization_id": org}
            ).status_code
            == 201
        )

    def ingest(_: int) -> dict:
        with _client(emulator, token) as client:
            event = {
                "name": "api_call",
                "external_customer_id": "u1",
                "external_id": "evt-1",
                "organization_id": org,
            }
            return client.post("/v1/events/ingest", json={"events": [event]}).json()

    results = _at_once(N, ingest)
    assert sum(r["inserted"] for r in results) == 1
    assert sum(r.get("duplicates", 0) for r in results) == N - 1
