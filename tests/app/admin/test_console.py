"""The support console over HTTP: who may see it, what each action does, and its audit rows."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from app.accounts.models import User, Workspace
from provisioning.api_keys import service as api_keys
from provisioning.api_keys.models import KeyMode
from provisioning.audit.models import AuditEvent
from provisioning.config import Settings
from provisioning.db import utcnow
from provisioning.integrations.models import IntegrationStatus, PolarIntegration, PolarMeterMapping
from provisioning.runs.models import ProvisioningRun, RunBatch, RunStatus
from provisioning.webhooks.models import EventStatus, PolarWebhookEvent
from tests.app.conftest import Accounts, login
from tests.app.polar.conftest import consent, run_jobs, start_connect

CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')
UNKNOWN = str(uuid.uuid4())


@pytest.fixture
def staff(accounts: Accounts) -> User:
    return accounts.user("support@example.com", staff=True)


@pytest.fixture
def connected(app: Flask, owner: User, workspace: Workspace, settings: Settings, redis_url: str) -> Workspace:
    """The owner's workspace, connected and provisioned through the real flow."""
    client = app.test_client()
    login(client, owner.email)
    answer = consent(start_connect(client, workspace.id))
    assert client.get(answer.callback_path).status_code == 303
    run_jobs(redis_url, settings)
    return workspace


@pytest.fixture
def staff_client(app: Flask, staff: User) -> Iterator[FlaskClient]:
    client = app.test_client()
    login(client, staff.email)
    yield client


def _token(client: FlaskClient, path: str) -> str:
    match = CSRF_RE.search(client.get(path).get_data(as_text=True))
    assert match, path
    return match.group(1)


def _integration(session: Session, workspace_id: str) -> PolarIntegration:
    session.expire_all()
    found = session.scalar(sa.select(PolarIntegration).where(PolarIntegration.workspace_id == workspace_id))
    assert found is not None
    return found


def _runs(session: Session, integration_id: str) -> list[ProvisioningRun]:
    session.expire_all()
    return list(
        session.scalars(
            sa.select(ProvisioningRun)
            .where(ProvisioningRun.integration_id == integration_id)
            .order_by(ProvisioningRun.created_at)
        )
    )


def _audit(session: Session, action: str | None = None) -> list[AuditEvent]:
    session.expire_all()
    query = sa.select(AuditEvent).order_by(AuditEvent.created_at)
    if action:
        query = query.where(AuditEvent.action == action)
    return list(session.scalars(query))


GETS = ["/admin", "/admin/workspaces", "/admin/workspaces/{ws}", "/admin/queue", "/admin/audit"]
POSTS = [
    "/admin/workspaces/{ws}/reprovision",
    "/admin/workspaces/{ws}/retry",
    "/admin/workspaces/{ws}/check",
    "/admin/workspaces/{ws}/disconnect",
    "/admin/workspaces/{ws}/api-keys/revoke",
    "/admin/bulk/reprovision",
    "/admin/queue/requeue",
]


def test_signed_out_visitors_are_sent_to_sign_in(client: FlaskClient, workspace: Workspace) -> None:
    for path in GETS:
        response = client.get(path.format(ws=workspace.id))
        assert response.status_code == 302 and "/login" in response.headers["Location"], path


def test_anyone_but_staff_gets_404_everywhere(
    app: Flask, accounts: Accounts, owner: User, connected: Workspace, session: Session
) -> None:
    member = accounts.user("member@example.com")
    integration = _integration(session, connected.id)
    before = len(_runs(session, integration.id))
    for who in (owner, member):
        client = app.test_client()
        login(client, who.email)
        token = _token(client, f"/workspaces/{connected.id}/polar")
        for path in GETS:
            assert client.get(path.format(ws=connected.id)).status_code == 404, (who.email, path)
        for path in POSTS:
            response = client.post(path.format(ws=connected.id), data={"csrf_token": token, "reason": "x"})
            assert response.status_code == 404, (who.email, path)
    assert len(_runs(session, integration.id)) == before
    assert not [e for e in _audit(session) if e.action.startswith("staff.")]


def test_staff_see_every_page(staff_client: FlaskClient, connected: Workspace, session: Session) -> None:
    for path in GETS:
        response = staff_client.get(path.format(ws=connected.id), follow_redirects=True)
        assert response.status_code == 200, path
    page = staff_client.get(f"/admin/workspaces/{connected.id}").get_data(as_text=True)
    assert "Polar sandbox" in page and "ensure products" in page and "owner@example.com" in page
    polar_meter_id = session.scalar(
        sa.select(PolarMeterMapping.polar_meter_id)
        .join(PolarIntegration)
        .where(PolarIntegration.workspace_id == connected.id, PolarMeterMapping.meter_id == "api-calls")
    )
    assert polar_meter_id and f"api-calls <code>{polar_meter_id}</code>" in page
    assert "polar_at_" not in page and "polar_rt_" not in page and "whsec_" not in page


def test_the_list_searches_filters_and_counts(
    staff_client: FlaskClient, connected: Workspace, accounts: Accounts, owner: User
) -> None:
    accounts.workspace("Zebra Corp", owner)
    page = staff_client.get("/admin/workspaces").get_data(as_text=True)
    assert "Ready: 1" in page and "Zebra Corp" not in page  # the list is of connections
    never = staff_client.get("/admin/workspaces?status=never_connected").get_data(as_text=True)
    assert "Zebra Corp" in never and "Acme" not in never
    found = staff_client.get("/admin/workspaces?q=owner@EXAMPLE.com").get_data(as_text=True)
    assert "Acme" in found and "Zebra Corp" in found
    assert "Zebra Corp" not in staff_client.get("/admin/workspaces?status=ready").get_data(as_text=True)
    by_org = staff_client.get("/admin/workspaces?q=demo-org").get_data(as_text=True)
    assert "Acme" in by_org and "Zebra Corp" not in by_org
    problems = staff_client.get("/admin/workspaces?problem=1").get_data(as_text=True)
    assert "No workspace matches." in problems


@pytest.mark.parametrize("q", ["%", "_", "' OR 1=1 --", "<script>alert(1)</script>", "\\"])
def test_search_metacharacters_match_literally(
    staff_client: FlaskClient, connected: Workspace, q: str
) -> None:
    response = staff_client.get("/admin/workspaces", query_string={"q": q})
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "No workspace matches." in body
    assert "<script>alert(1)</script>" not in body


def test_bad_list_parameters_are_refused(staff_client: FlaskClient, connected: Workspace) -> None:
    assert staff_client.get("/admin/workspaces?before=yesterday").status_code == 400
    assert staff_client.get("/admin/workspaces?before=2026-01-01T00:00:00~not-an-id").status_code == 400
    assert staff_client.get("/admin/workspaces?status=bogus").status_code == 400
    assert staff_client.get("/admin/workspaces?environment=staging").status_code == 400
    old = staff_client.get(f"/admin/workspaces?before=2000-01-01T00:00:00~{UNKNOWN}")
    assert old.status_code == 200 and "No older rows" in old.get_data(as_text=True)
    assert staff_client.get("/admin/workspaces/not-a-uuid").status_code == 404
    assert staff_client.get(f"/admin/workspaces/{UNKNOWN}").status_code == 404


def test_the_list_pages_by_activity(
    staff_client: FlaskClient, connected: Workspace, accounts: Accounts, owner: User, monkeypatch
) -> None:
    from app.admin import views

    monkeypatch.setattr(views, "PAGE_SIZE", 2)
    for n in range(3):
        accounts.workspace(f"Never {n}", owner)
    first = staff_client.get("/admin/workspaces?status=never_connected").get_data(as_text=True)
    assert "Never 2" in first and "Never 1" in first and "Never 0" not in first and "3 row(s)" in first
    older = re.search(r'href="([^"]+before=[^"]+)">Older', first)
    assert older
    second = staff_client.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert "Never 0" in second and "Never 1" not in second and "Older" not in second


def test_reprovision_queues_one_run_and_audits_it(
    staff_client: FlaskClient, connected: Workspace, session: Session, staff: User, redis_conn
) -> None:
    integration = _integration(session, connected.id)
    before = _runs(session, integration.id)
    path = f"/admin/workspaces/{connected.id}"
    token = _token(staff_client, path)

    first = staff_client.post(f"{path}/reprovision", data={"csrf_token": token, "reason": "catalog fix"})
    second = staff_client.post(f"{path}/reprovision", data={"csrf_token": token, "reason": "again"})

    assert first.status_code == second.status_code == 303
    runs = _runs(session, integration.id)
    assert len(runs) == len(before) + 1  # the second found the first still queued
    run = runs[-1]
    assert (run.status, run.trigger, run.requested_by_user_id) == (RunStatus.QUEUED, "admin", staff.id)
    [event] = _audit(session, "staff.reprovision")
    assert (event.actor_id, event.actor_email, event.reason) == (staff.id, staff.email, "catalog fix")
    assert event.workspace_id == connected.id and event.target_ids["run_id"] == run.id
    assert event.request_id and event.client_address
    page = staff_client.get(path).get_data(as_text=True)
    assert "A run is already under way" in page or "already under way" in page


def test_an_action_without_reason_or_csrf_changes_nothing(
    staff_client: FlaskClient, connected: Workspace, session: Session
) -> None:
    integration = _integration(session, connected.id)
    before = len(_runs(session, integration.id))
    path = f"/admin/workspaces/{connected.id}"
    token = _token(staff_client, path)
    no_reason = staff_client.post(f"{path}/reprovision", data={"csrf_token": token, "reason": "  "})
    assert no_reason.status_code == 303
    assert "Say why" in staff_client.get(path).get_data(as_text=True)
    no_csrf = staff_client.post(f"{path}/reprovision", data={"reason": "no token"})
    assert no_csrf.status_code == 400
    no_confirm = staff_client.post(f"{path}/disconnect", data={"csrf_token": token, "reason": "bye"})
    assert no_confirm.status_code == 303
    assert len(_runs(session, integration.id)) == before
    assert _integration(session, connected.id).status == IntegrationStatus.READY
    assert not [e for e in _audit(session) if e.action.startswith("staff.")]


def test_reprovision_of_a_workspace_without_connection_is_refused(
    staff_client: FlaskClient, workspace: Workspace, session: Session
) -> None:
    token = _token(staff_client, "/admin/workspaces")
    response = staff_client.post(
        f"/admin/workspaces/{workspace.id}/reprovision", data={"csrf_token": token, "reason": "try"}
    )
    assert response.status_code == 404
    assert not _audit(session, "staff.reprovision")


def test_a_failed_audit_insert_undoes_the_action(
    staff_client: FlaskClient, connected: Workspace, session: Session
) -> None:
    """Fault injected in the database itself: a trigger refuses this one audit row."""
    session.execute(
        sa.text(
            "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.reason = 'refuse me' THEN RAISE EXCEPTION 'audit refused'; END IF; RETURN NEW; END; $$"
        )
    )
    session.execute(
        sa.text(
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_event FOR EACH ROW EXECUTE FUNCTION refuse_audit()"
        )
    )
    session.commit()
    integration = _integration(session, connected.id)
    before = len(_runs(session, integration.id))
    token = _token(staff_client, f"/admin/workspaces/{connected.id}")

    with pytest.raises(sa.exc.DBAPIError, match="audit refused"):
        staff_client.post(
            f"/admin/workspaces/{connected.id}/reprovision", data={"csrf_token": token, "reason": "refuse me"}
        )

    assert len(_runs(session, integration.id)) == before
    assert not _audit(session, "staff.reprovision")


def test_audit_rows_cannot_be_updated_or_deleted(session: Session) -> None:
    session.add(AuditEvent(action="test.append_only", details={}, target_ids={}))
    session.commit()
    event = _audit(session, "test.append_only")[0]
    with pytest.raises(AttributeError, match="append-only"):
        event.reason = "rewritten"
    for statement in ("UPDATE audit_event SET reason = 'x'", "DELETE FROM audit_event"):
        savepoint = session.begin_nested()
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            session.execute(sa.text(statement))
        savepoint.rollback()
    assert len(_audit(session, "test.append_only")) == 1


def test_disconnect_by_staff_needs_confirmation_and_is_audited(
    staff_client: FlaskClient, connected: Workspace, session: Session
) -> None:
    path = f"/admin/workspaces/{connected.id}"
    token = _token(staff_client, path)
    response = staff_client.post(
        f"{path}/disconnect", data={"csrf_token": token, "reason": "owner asked by email", "confirm": "y"}
    )
    assert response.status_code == 303
    integration = _integration(session, connected.id)
    assert integration.status == IntegrationStatus.NOT_CONNECTED and integration.access_token is None
    [event] = _audit(session, "staff.disconnect")
    assert event.reason == "owner asked by email"


def test_staff_see_a_workspace_s_api_keys_and_revoke_one_with_a_reason(
    staff_client: FlaskClient, connected: Workspace, owner: User, session: Session, settings: Settings
) -> None:
    created = api_keys.create(
        session, settings, workspace_id=connected.id, name="Leaked in a ticket", mode=KeyMode.TEST
    )
    session.commit()
    key = created.key
    path = f"/admin/workspaces/{connected.id}"
    page = staff_client.get(path).get_data(as_text=True)
    assert "Leaked in a ticket" in page and f"{key.display_prefix}…" in page
    assert created.plaintext not in page

    token = _token(staff_client, path)
    refused = staff_client.post(f"{path}/api-keys/revoke", data={"csrf_token": token, "key_id": key.id})
    assert refused.status_code == 303  # no reason: nothing changes
    session.expire_all()
    assert api_keys.verify(session, created.plaintext) is not None

    response = staff_client.post(
        f"{path}/api-keys/revoke",
        data={"csrf_token": token, "key_id": key.id, "reason": "the owner pasted it in a ticket"},
    )
    assert response.status_code == 303
    session.expire_all()
    assert api_keys.verify(session, created.plaintext) is None
    [event] = _audit(session, "staff.revoke_api_key")
    assert event.reason == "the owner pasted it in a ticket"
    assert event.target_ids == {"api_key_id": key.id}
    assert (
        staff_client.post(
            f"/admin/workspaces/{UNKNOWN}/api-keys/revoke",
            data={"csrf_token": token, "key_id": key.id, "reason": "x"},
        ).status_code
        == 404
    )


def test_retry_requeues_a_failed_run(
    staff_client: FlaskClient, connected: Workspace, session: Session, control
) -> None:
    integration = _integration(session, connected.id)
    run = _runs(session, integration.id)[-1]
    run.status = RunStatus.FAILED
    run.error = "Polar was down"
    session.commit()
    path = f"/admin/workspaces/{connected.id}"
    token = _token(staff_client, path)
    response = staff_client.post(
        f"{path}/retry", data={"csrf_token": token, "reason": "Polar is back", "run_id": run.id}
    )
    assert response.status_code == 303
    session.expire_all()
    assert session.get(ProvisioningRun, run.id).status == RunStatus.QUEUED
    assert _audit(session, "staff.retry_run")[0].target_ids["run_id"] == run.id
    again = staff_client.post(
        f"{path}/retry", data={"csrf_token": token, "reason": "twice", "run_id": run.id}
    )
    assert again.status_code == 303
    assert len(_audit(session, "staff.retry_run")) == 1  # only a failed run can be retried


def test_check_now_records_what_it_found(
    staff_client: FlaskClient, connected: Workspace, session: Session, control
) -> None:
    path = f"/admin/workspaces/{connected.id}"
    token = _token(staff_client, path)
    staff_client.post(f"{path}/check", data={"csrf_token": token, "reason": "owner reports no events"})
    [healthy] = _audit(session, "staff.check_connection")
    assert healthy.details["ok"] is True and healthy.details["endpoint"] == "present"

    control.post("/_emulator/tokens/revoke-user", json={"email": "demo@polar.local"}).raise_for_status()
    staff_client.post(f"{path}/check", data={"csrf_token": token, "reason": "again"})
    revoked = _audit(session, "staff.check_connection")[-1]
    assert revoked.details["ok"] is False and revoked.details["grant_active"] is False
    assert "revoked" in staff_client.get(path).get_data(as_text=True)


def test_bulk_reprovision_of_nothing_and_of_a_filter(
    staff_client: FlaskClient, connected: Workspace, session: Session
) -> None:
    token = _token(staff_client, "/admin/workspaces")
    base = {"csrf_token": token, "reason": "catalog 2", "confirm": "y"}
    nothing = staff_client.post("/admin/bulk/reprovision", data={**base, "scope": "selected"})
    assert nothing.status_code == 303
    assert session.scalar(sa.select(sa.func.count()).select_from(RunBatch)) == 0
    unconfirmed = staff_client.post(
        "/admin/bulk/reprovision", data={**base, "scope": "matching", "status": "ready", "confirm": ""}
    )
    assert unconfirmed.status_code == 303
    assert session.scalar(sa.select(sa.func.count()).select_from(RunBatch)) == 0

    response = staff_client.post(
        "/admin/bulk/reprovision", data={**base, "scope": "matching", "status": "ready"}
    )
    assert response.status_code == 303 and "/admin/batches/" in response.headers["Location"]
    progress = staff_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "0 of 1 done" in progress
    [event] = _audit(session, "staff.bulk_reprovision")
    assert event.target_ids["runs"] == 1 and "matching" in event.details["selection"]


def test_queue_page_and_requeue_of_an_unknown_job(
    staff_client: FlaskClient, connected: Workspace, session: Session
) -> None:
    page = staff_client.get("/admin/queue").get_data(as_text=True)
    assert "Queued jobs" in page and "No worker is running" in page
    token = _token(staff_client, "/admin/queue")
    response = staff_client.post(
        "/admin/queue/requeue", data={"csrf_token": token, "reason": "retry it", "job_id": "provision-nope"}
    )
    assert response.status_code == 303
    assert not _audit(session, "staff.requeue_job")


def test_sign_ins_and_owner_actions_are_audited(
    app: Flask, owner: User, connected: Workspace, session: Session, staff_client: FlaskClient
) -> None:
    client = app.test_client()
    response = client.post(
        "/login",
        data={"email": owner.email, "password": "wrong password", "csrf_token": _token(client, "/login")},
    )
    assert response.status_code == 401
    actions = [e.action for e in _audit(session)]
    assert "owner.connect" in actions and "auth.sign_in" in actions
    failed = _audit(session, "auth.sign_in_failed")[-1]
    assert failed.actor_email == owner.email and failed.actor_id is None
    trail = staff_client.get(f"/admin/audit?action=owner.connect&workspace={connected.id}").get_data(
        as_text=True
    )
    assert "owner.connect" in trail and owner.email in trail
    assert staff_client.get("/admin/audit?since=yesterday").status_code == 400


def _failed_event(session: Session, integration_id: str) -> PolarWebhookEvent:
    """An event whose processing gave up (``flask webhooks replay`` or the console tries again)."""
    event = PolarWebhookEvent(
        integration_id=integration_id,
        webhook_id="evt-gave-up",
        event_type="customer.created",
        payload={"type": "customer.created", "timestamp": utcnow().isoformat(), "data": {}},
        status=EventStatus.FAILED,
        attempts=7,
        note="malformed event: the event's object has no id",
        received_at=utcnow(),
    )
    session.add(event)
    session.commit()
    return event


def test_staff_see_failing_events_and_process_them_again_with_a_reason(
    staff_client: FlaskClient, connected: Workspace, session: Session
) -> None:
    integration = _integration(session, connected.id)
    event = _failed_event(session, integration.id)
    path = f"/admin/workspaces/{connected.id}"
    page = " ".join(staff_client.get(path).get_data(as_text=True).split())
    assert "1 failing processing" in page
    assert "malformed event: the event&#39;s object has no id" in page
    assert "0 customers, 0 active subscriptions." in page

    token = _token(staff_client, path)
    refused = staff_client.post(
        f"{path}/events/retry", data={"csrf_token": token, "integration_id": integration.id}
    )
    assert refused.status_code == 303  # no reason: nothing changes
    session.expire_all()
    assert session.get(PolarWebhookEvent, event.id).status == EventStatus.FAILED

    done = staff_client.post(
        f"{path}/events/retry",
        data={"csrf_token": token, "integration_id": integration.id, "reason": "fixed the parser"},
    )
    assert done.status_code == 303
    session.expire_all()
    again = session.get(PolarWebhookEvent, event.id)
    assert (again.status, again.attempts, again.next_attempt_at) == (EventStatus.PENDING, 0, None)
    [audit] = _audit(session, "staff.retry_events")
    assert audit.reason == "fixed the parser" and audit.target_ids == {"integration_id": integration.id}

    unknown = staff_client.post(
        f"{path}/events/retry", data={"csrf_token": token, "integration_id": "nope", "reason": "x"}
    )
    assert unknown.status_code == 404


def test_only_staff_process_events_again(app, connected: Workspace, owner: User, session: Session) -> None:
    integration = _integration(session, connected.id)
    event = _failed_event(session, integration.id)
    client = app.test_client()
    login(client, owner.email)
    token = _token(client, f"/workspaces/{connected.id}/polar")
    answer = client.post(
        f"/admin/workspaces/{connected.id}/events/retry",
        data={"csrf_token": token, "integration_id": integration.id, "reason": "x"},
    )
    assert answer.status_code == 404  # the console does not exist for non-staff
    session.expire_all()
    assert session.get(PolarWebhookEvent, event.id).status == EventStatus.FAILED
    assert session.scalar(sa.select(sa.func.count()).select_from(PolarWebhookEvent)) >= 1
