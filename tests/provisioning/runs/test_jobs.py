"""The provision job end to end: emulator over HTTP, real PostgreSQL, the real SDK."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from provisioning.catalog import load_catalog
from provisioning.catalog.desired import BENEFIT_KEY, METER_KEY, PLAN_KEY, WORKSPACE_KEY
from provisioning.integrations.models import IntegrationStatus, PolarMeterMapping, PolarProductMapping
from provisioning.reconcile.webhook import WEBHOOK_EVENTS
from provisioning.runs.jobs import provision
from provisioning.runs.models import ProvisioningRun, RunStatus, StepStatus
from provisioning.runs.saga import STEP_NAMES
from provisioning.runs.service import create_run
from provisioning.status import status_snapshot
from tests.provisioning.conftest import writes


def _api(control: httpx.Client, token_holder, path: str, **params) -> list[dict]:
    return control.get(
        path, params={"limit": 100, **params}, headers={"Authorization": f"Bearer {token_holder}"}
    ).json()["items"]


def _token(settings, integration) -> str:
    from provisioning.integrations.service import access_token

    return access_token(settings, integration)


def test_full_run_creates_everything_with_our_metadata(session, settings, connect, control):
    connected = connect()
    integration, run = connected.integration, connected.run
    assert integration.status == IntegrationStatus.PROVISIONING and run is not None

    result = provision(run.id, settings)

    assert result["status"] == RunStatus.SUCCEEDED, result
    session.expire_all()
    run = session.get(ProvisioningRun, run.id)
    assert [s.name for s in run.steps] == list(STEP_NAMES)
    assert all(s.status == StepStatus.SUCCEEDED for s in run.steps), [(s.name, s.error) for s in run.steps]
    assert all(s.duration_ms is not None for s in run.steps)
    assert integration.status == IntegrationStatus.READY
    assert integration.provisioned_at is not None

    catalog = load_catalog(settings.plans_file)
    assert integration.catalog_revision == catalog.revision
    token = _token(settings, integration)
    org = integration.polar_org_id
    ws = integration.workspace_id
    products = _api(control, token, "/v1/products/", organization_id=org)
    by_plan = {p["metadata"][PLAN_KEY]: p for p in products}
    assert set(by_plan) == {p.id for p in catalog.plans}
    assert all(p["metadata"][WORKSPACE_KEY] == ws for p in products)
    assert by_plan["pro-yearly"]["recurring_interval"] == "year"
    assert {b["metadata"][BENEFIT_KEY] for b in by_plan["pro-monthly"]["benefits"]} == {
        "core-features",
        "pro-features",
        "priority-support",
    }
    benefits = _api(control, token, "/v1/benefits/", organization_id=org)
    assert {b["metadata"][BENEFIT_KEY] for b in benefits} == {b.id for b in catalog.benefits}
    meters = _api(control, token, "/v1/meters/", organization_id=org)
    assert {m["metadata"][METER_KEY] for m in meters} == {"api-calls"}
    endpoints = _api(control, token, "/v1/webhooks/endpoints", organization_id=org)
    assert len(endpoints) == 1
    assert endpoints[0]["url"].endswith("/polar/webhooks/" + integration.webhook_path_token)
    assert set(endpoints[0]["events"]) == set(WEBHOOK_EVENTS)
    assert integration.webhook_endpoint_id == endpoints[0]["id"]
    assert integration.webhook_secret and endpoints[0]["secret"] not in integration.webhook_secret

    mappings = session.scalars(select(PolarProductMapping).filter_by(integration_id=integration.id)).all()
    assert {m.plan_id: m.polar_product_id for m in mappings} == {k: v["id"] for k, v in by_plan.items()}
    meter_mappings = session.scalars(select(PolarMeterMapping).filter_by(integration_id=integration.id)).all()
    assert {m.meter_id: m.polar_meter_id for m in meter_mappings} == {
        m["metadata"][METER_KEY]: m["id"] for m in meters
    }

    snapshot = status_snapshot(session, ws)
    assert snapshot["status"] == "ready"
    assert snapshot["organization"]["id"] == org
    assert [s["status"] for s in snapshot["steps"]] == ["succeeded"] * len(STEP_NAMES)
    assert {p["plan_id"] for p in snapshot["products"]} == set(by_plan)
    assert snapshot["webhook_endpoint_id"] == integration.webhook_endpoint_id
    assert run.api_calls["write"] > 0


def test_second_run_makes_no_write_call(session, settings, connect, control):
    connected = connect()
    assert provision(connected.run.id, settings)["status"] == "succeeded"
    control.delete("/_emulator/requests")

    second = create_run(session, connected.integration, trigger="admin")
    session.commit()
    result = provision(second.id, settings)

    assert result["status"] == "succeeded"
    assert writes(control) == []
    assert result["api_calls"]["write"] == 0
    # the account check and one list call per resource (all < 100 items), nothing else
    assert result["api_calls"]["read"] == 5


def _product_count(control, settings, integration) -> int:
    token = _token(settings, integration)
    return len(_api(control, token, "/v1/products/", organization_id=integration.polar_org_id))


def test_lost_create_response_does_not_duplicate(session, settings, connect, control):
    """Polar creates the product but we see a 500: the run finds it instead of creating it twice."""
    connected = connect()
    control.post(
        "/_emulator/faults",
        json={"path": "/v1/products/", "method": "POST", "status": 500, "count": 1, "when": "after"},
    ).raise_for_status()

    assert provision(connected.run.id, settings)["status"] == "succeeded"
    assert control.get("/_emulator/faults").json()[0]["hits"] == 1
    assert _product_count(control, settings, connected.integration) == 4

    rerun = create_run(session, connected.integration, trigger="admin")
    session.commit()
    assert provision(rerun.id, settings)["status"] == "succeeded"
    assert _product_count(control, settings, connected.integration) == 4


def test_503_and_429_are_retried(session, settings, connect, control):
    connected = connect()
    faults = [
        {"path": "/v1/products/", "method": "GET", "status": 503, "count": 2},
        {"path": "/v1/benefits/", "method": "POST", "status": 503, "count": 1},
        {"path": "/v1/meters/", "method": "POST", "status": 429, "retry_after": 1, "count": 1},
    ]
    for fault in faults:
        control.post("/_emulator/faults", json=fault).raise_for_status()

    result = provision(connected.run.id, settings)

    assert result["status"] == "succeeded", result
    hits = {f["path"] + f["method"]: f["hits"] for f in control.get("/_emulator/faults").json()}
    assert hits == {"/v1/products/GET": 2, "/v1/benefits/POST": 1, "/v1/meters/POST": 1}
    assert _product_count(control, settings, connected.integration) == 4


def test_missing_scope_fails_the_run_with_an_actionable_message(session, settings, connect, control):
    from provisioning.connect.models import PolarConnectAttempt
    from provisioning.connect.service import begin_connect, verifier_slot
    from provisioning.integrations.service import store_tokens, vault_for
    from provisioning.polar.oauth import PolarOAuth
    from tests.provisioning.conftest import consent

    connected = connect()
    # Swap in a grant without webhooks:write, as if the owner had narrowed it on Polar.
    start = begin_connect(
        session, settings, workspace_id=connected.owner.workspace_id, user_id=connected.owner.user_id
    )
    narrow = " ".join(s for s in load_catalog(settings.plans_file).required_scopes() if s != "webhooks:write")
    code, _ = consent(start.authorize_url, scope=narrow)
    attempt = session.get(PolarConnectAttempt, start.nonce)
    verifier = vault_for(settings).decrypt(verifier_slot(start.nonce), attempt.code_verifier)
    store_tokens(settings, connected.integration, PolarOAuth(settings.polar()).exchange_code(code, verifier))
    session.commit()

    result = provision(connected.run.id, settings)

    assert result["status"] == "failed"
    message = "Polar refused: the connection lacks the 'webhooks:write' scope; reconnect Polar to grant it"
    assert result["error"] == message
    session.expire_all()
    run = session.get(ProvisioningRun, connected.run.id)
    failed = {s.name: s for s in run.steps}["ensure_webhook_endpoint"]
    assert failed.status == StepStatus.FAILED and failed.error == message
    assert connected.integration.last_error == message
    assert connected.integration.status == IntegrationStatus.NEEDS_RECONNECT


def test_a_job_for_a_run_that_no_longer_exists_is_dropped_not_retried(session, settings):
    result = provision("00000000-0000-4000-8000-000000000000", settings)

    assert result == {"run_id": "00000000-0000-4000-8000-000000000000", "status": "missing"}
