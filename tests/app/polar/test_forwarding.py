"""Event forwarding on the billing page: the owner sets the endpoint URL and sees its signing secret
once (its own page, no-store, never anywhere else), rotates it, disables, enables and removes the
endpoint, and reads the delivery log, redelivering from it; every action CSRF-protected and
audited. Members see it all and change nothing. Events reach a real HTTP server through the real
delivery job."""

from __future__ import annotations

import json
import logging
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from app.accounts import service as accounts_service
from app.accounts.models import User, Workspace
from provisioning.audit.models import AuditEvent
from provisioning.config import Settings
from provisioning.forwarding import service as forwarding
from provisioning.forwarding.models import DeliveryStatus, EventForwardDelivery, EventForwardEndpoint
from provisioning.forwarding.signing import new_secret
from provisioning.integrations.models import PolarIntegration
from provisioning.integrations.service import get_integration
from tests.app.conftest import Accounts, csrf_token, login
from tests.app.polar.conftest import connect_and_provision, run_jobs
from tests.provisioning.forwarding.support import TenantApp, processed_event, tenant_app

SECRET_RE = re.compile(r'id="signing-secret"[^>]*value="(whsec_[A-Za-z0-9+/=]+)"')
ANY_SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]{20,}")


@pytest.fixture
def receiver():
    with tenant_app() as app:
        yield app


def _base(workspace_id: str) -> str:
    return f"/workspaces/{workspace_id}/polar/forwarding"


def _page(client: FlaskClient, workspace_id: str) -> str:
    return client.get(f"/workspaces/{workspace_id}/polar").get_data(as_text=True)


def _token(client: FlaskClient, workspace_id: str) -> str:
    return csrf_token(client, f"/workspaces/{workspace_id}/polar")


def _save(client: FlaskClient, workspace_id: str, url: str, **fields: str):
    data = {"csrf_token": _token(client, workspace_id), "url": url, "environment": "sandbox", **fields}
    return client.post(_base(workspace_id), data=data)


def _set_up(client: FlaskClient, workspace_id: str, url: str) -> str:
    """Save the URL as the owner; returns the secret the answer page shows."""
    response = _save(client, workspace_id, url)
    assert response.status_code == 200, response.get_data(as_text=True)
    match = SECRET_RE.search(response.get_data(as_text=True))
    assert match, response.get_data(as_text=True)
    return match.group(1)


def _integration(session: Session, workspace_id: str) -> PolarIntegration:
    integration = get_integration(session, workspace_id, "sandbox")
    assert integration is not None
    return integration


def _endpoint(session: Session, workspace_id: str) -> EventForwardEndpoint | None:
    session.expire_all()
    return forwarding.endpoint_of(session, _integration(session, workspace_id).id)


def _audit(session: Session, action: str) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def _forward(
    session: Session, settings: Settings, workspace_id: str, event_type: str = "subscription.active"
):
    """What billing does once it processed an event: record it for forwarding, and commit."""
    integration = _integration(session, workspace_id)
    event, payload = processed_event(session, integration.id, event_type)
    forwarding.record(session, settings, integration, event.id, event_type, payload)
    session.commit()
    return payload


def _deliveries(session: Session, workspace_id: str) -> list[EventForwardDelivery]:
    session.expire_all()
    return forwarding.deliveries_of(session, _integration(session, workspace_id).id)


def test_the_owner_sets_a_url_and_sees_the_secret_once(
    owner_client: FlaskClient, ready: Workspace, session: Session, settings: Settings
) -> None:
    page = _page(owner_client, ready.id)
    assert "Event forwarding" in page and "Save and show the secret" in page

    response = _save(owner_client, ready.id, "https://app.example.com/webhooks/billing")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    text = response.get_data(as_text=True)
    secret = SECRET_RE.search(text)
    assert secret, text
    plaintext = secret.group(1)
    assert "only time it is shown" in text and "Copy secret" in text
    assert all(plaintext not in h for h in response.headers.getlist("Set-Cookie"))
    with owner_client.session_transaction() as flask_session:
        assert plaintext not in repr(dict(flask_session))

    endpoint = _endpoint(session, ready.id)
    assert endpoint is not None and endpoint.url == "https://app.example.com/webhooks/billing"
    assert endpoint.enabled and plaintext not in endpoint.secret
    assert forwarding.signing_secrets(settings, endpoint) == [plaintext]
    (event,) = _audit(session, "event_forwarding.create")
    assert event.workspace_id == ready.id and event.actor_email == "owner@example.com"
    assert event.target_ids == {"endpoint_id": endpoint.id, "integration_id": endpoint.integration_id}
    assert event.details == {"mode": "test mode", "url": "https://app.example.com/webhooks/billing"}

    # The billing page shows the endpoint, never the secret.
    page = _page(owner_client, ready.id)
    assert "https://app.example.com/webhooks/billing" in page and "Rotate secret" in page
    assert plaintext not in page and not ANY_SECRET.search(page)


def test_the_form_sent_again_shows_no_secret_and_a_new_url_keeps_it(
    owner_client: FlaskClient, ready: Workspace, session: Session, settings: Settings
) -> None:
    plaintext = _set_up(owner_client, ready.id, "https://app.example.com/hooks")

    again = _save(owner_client, ready.id, "https://app.example.com/hooks")  # a reload of the answer
    assert again.status_code == 303 and not ANY_SECRET.search(again.get_data(as_text=True))
    assert "unchanged" in owner_client.get(again.headers["Location"]).get_data(as_text=True)

    moved = _save(owner_client, ready.id, "https://api.example.com/billing?token=abc")
    assert moved.status_code == 303
    page = owner_client.get(moved.headers["Location"]).get_data(as_text=True)
    assert "signing secret is unchanged" in page and not ANY_SECRET.search(page)
    endpoint = _endpoint(session, ready.id)
    assert endpoint is not None and endpoint.url == "https://api.example.com/billing?token=abc"
    assert forwarding.signing_secrets(settings, endpoint) == [plaintext]
    (update,) = _audit(session, "event_forwarding.update")
    assert update.details == {
        "mode": "test mode",
        "url": "https://api.example.com/billing",  # no query string: it may hold a token
        "previous_url": "https://app.example.com/hooks",
    }
    assert len(_audit(session, "event_forwarding.create")) == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://app.example.com/hooks", "must start with https://"),
        ("https://user:secret@app.example.com/hooks", "must not contain a user name or password"),
        ("javascript:alert(1)", "must start with https://"),
        ("", "Give the URL of your app&#39;s endpoint."),
    ],
)
def test_a_refused_url_says_why_and_stores_nothing(
    owner_client: FlaskClient, ready: Workspace, session: Session, url: str, message: str
) -> None:
    response = _save(owner_client, ready.id, url)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert message in page
    assert 'id="forwarding-url-error"' in page and 'aria-invalid="true"' in page
    assert not ANY_SECRET.search(page)
    assert _endpoint(session, ready.id) is None


def test_without_a_connection_no_endpoint_can_be_set(owner_client: FlaskClient, workspace: Workspace) -> None:
    page = _page(owner_client, workspace.id)
    assert "Save and show the secret" not in page
    assert _save(owner_client, workspace.id, "https://app.example.com/hooks").status_code == 404


def test_rotating_asks_first_then_shows_a_new_secret_once_and_both_sign_meanwhile(
    owner_client: FlaskClient, ready: Workspace, session: Session, settings: Settings
) -> None:
    old = _set_up(owner_client, ready.id, "https://app.example.com/hooks")
    url = f"{_base(ready.id)}/rotate?environment=sandbox"

    confirm = owner_client.get(url)
    assert confirm.status_code == 200
    text = confirm.get_data(as_text=True)
    assert "Rotate the signing secret?" in text and "24 hours" in text and not ANY_SECRET.search(text)
    version = re.search(r'name="version" type="hidden" value="([0-9a-f]+)"', text)
    assert version

    data = {
        "csrf_token": csrf_token(owner_client, url),
        "environment": "sandbox",
        "version": version.group(1),
    }
    done = owner_client.post(f"{_base(ready.id)}/rotate", data=data)
    assert done.status_code == 200 and done.headers["Cache-Control"] == "no-store"
    match = SECRET_RE.search(done.get_data(as_text=True))
    assert match and match.group(1) != old
    assert "keeps signing every event beside this one until" in done.get_data(as_text=True)
    endpoint = _endpoint(session, ready.id)
    assert endpoint is not None
    assert forwarding.signing_secrets(settings, endpoint) == [match.group(1), old]

    # The same form again (a reload): no second rotation, no secret shown.
    again = owner_client.post(f"{_base(ready.id)}/rotate", data=data)
    assert again.status_code == 303 and not ANY_SECRET.search(again.get_data(as_text=True))
    assert forwarding.signing_secrets(settings, endpoint) == [match.group(1), old]
    (event,) = _audit(session, "event_forwarding.rotate_secret")
    assert event.details["previous_signs_until"] is not None
    page = _page(owner_client, ready.id)
    assert "the previous secret also signs until" in page and not ANY_SECRET.search(page)


def test_disable_enable_and_remove_are_audited(
    owner_client: FlaskClient, ready: Workspace, session: Session, settings: Settings
) -> None:
    _set_up(owner_client, ready.id, "https://app.example.com/hooks")
    data = {"csrf_token": _token(owner_client, ready.id), "environment": "sandbox"}

    assert owner_client.post(f"{_base(ready.id)}/disable", data=data).status_code == 303
    endpoint = _endpoint(session, ready.id)
    assert endpoint is not None and not endpoint.enabled
    assert "Disabled: no event is queued for it" in _page(owner_client, ready.id)
    _forward(session, settings, ready.id)
    assert _deliveries(session, ready.id) == []  # disabled: nothing queued
    assert owner_client.post(f"{_base(ready.id)}/enable", data=data).status_code == 303
    endpoint = _endpoint(session, ready.id)
    assert endpoint is not None and endpoint.enabled

    _forward(session, settings, ready.id)
    confirm = owner_client.get(f"{_base(ready.id)}/remove?environment=sandbox")
    assert confirm.status_code == 200 and "Remove the endpoint?" in confirm.get_data(as_text=True)
    assert _endpoint(session, ready.id) is not None  # asking changed nothing
    removed = owner_client.post(f"{_base(ready.id)}/remove", data=data)
    assert removed.status_code == 303
    assert "1 not yet delivered are marked failed" in owner_client.get(removed.headers["Location"]).get_data(
        as_text=True
    )
    assert _endpoint(session, ready.id) is None
    assert [d.status for d in _deliveries(session, ready.id)] == [DeliveryStatus.FAILED]
    actions = [
        e.action
        for e in session.scalars(select(AuditEvent).order_by(AuditEvent.created_at))
        if "forwarding" in e.action
    ]
    assert actions == [
        "event_forwarding.create",
        "event_forwarding.disable",
        "event_forwarding.enable",
        "event_forwarding.remove",
    ]
    assert "Save and show the secret" in _page(owner_client, ready.id)  # a new one can be set


def test_every_change_needs_the_csrf_token(
    owner_client: FlaskClient, ready: Workspace, session: Session, settings: Settings
) -> None:
    base = _base(ready.id)
    refused = owner_client.post(base, data={"url": "https://app.example.com/hooks", "environment": "sandbox"})
    assert refused.status_code == 400 and _endpoint(session, ready.id) is None

    _set_up(owner_client, ready.id, "https://app.example.com/hooks")
    _forward(session, settings, ready.id)
    (delivery,) = _deliveries(session, ready.id)
    endpoint = _endpoint(session, ready.id)
    assert endpoint is not None
    version = forwarding.secret_version(endpoint)
    for path, data in [
        (base, {"url": "https://evil.example.com/hooks"}),
        (f"{base}/rotate", {"version": version}),
        (f"{base}/disable", {}),
        (f"{base}/remove", {}),
        (f"{base}/deliveries/{delivery.id}/redeliver", {}),
    ]:
        response = owner_client.post(path, data={"environment": "sandbox", **data})
        assert response.status_code == 400, path
        assert not ANY_SECRET.search(response.get_data(as_text=True))
    after = _endpoint(session, ready.id)
    assert after is not None and after.enabled and after.url == "https://app.example.com/hooks"
    assert after.secret == endpoint.secret and after.previous_secret is None
    assert len(_audit(session, "event_forwarding.create")) == 1 and not _audit(
        session, "event_forwarding.remove"
    )


def test_members_see_the_endpoint_and_log_and_change_nothing(
    app: Flask,
    owner_client: FlaskClient,
    accounts: Accounts,
    ready: Workspace,
    session: Session,
    settings: Settings,
) -> None:
    _set_up(owner_client, ready.id, "https://app.example.com/hooks")
    _forward(session, settings, ready.id)
    (delivery,) = _deliveries(session, ready.id)
    member = accounts.user("member@example.com")
    accounts_service.add_member(session, ready, member)
    session.commit()
    client = app.test_client()
    login(client, member.email)

    page = _page(client, ready.id)
    assert "https://app.example.com/hooks" in page and "subscription.active" in page
    assert "Only the workspace's owners can change event forwarding." in page.replace("&#39;", "'")
    assert "Save URL" not in page and "Rotate secret" not in page and "/forwarding/remove" not in page
    log = client.get(f"{_base(ready.id)}/deliveries?environment=sandbox")
    assert log.status_code == 200 and "subscription.active" in log.get_data(as_text=True)
    assert "Redeliver" not in log.get_data(as_text=True)

    token = _token(client, ready.id)
    base = _base(ready.id)
    endpoint = _endpoint(session, ready.id)
    assert endpoint is not None
    for path, data in [
        (base, {"url": "https://evil.example.com/hooks"}),
        (f"{base}/rotate", {"version": forwarding.secret_version(endpoint)}),
        (f"{base}/disable", {}),
        (f"{base}/remove", {}),
        (f"{base}/deliveries/{delivery.id}/redeliver", {}),
    ]:
        response = client.post(path, data={"csrf_token": token, "environment": "sandbox", **data})
        assert response.status_code == 403, path
        assert not ANY_SECRET.search(response.get_data(as_text=True))
    for path in (f"{base}/rotate?environment=sandbox", f"{base}/remove?environment=sandbox"):
        assert client.get(path).status_code == 403
    after = _endpoint(session, ready.id)
    assert after is not None and after.url == "https://app.example.com/hooks" and after.enabled
    assert after.secret == endpoint.secret


def test_events_reach_the_tenant_app_and_the_log_redelivers(
    owner_client: FlaskClient, ready: Workspace, session: Session, settings: Settings, receiver: TenantApp
) -> None:
    secret = _set_up(owner_client, ready.id, receiver.url)
    receiver.answer_next(500)
    payload = _forward(session, settings, ready.id)

    run_jobs(settings.redis_url, settings)  # the nudged job: answered 500, retried in 10 s
    (failed,) = receiver.wait_for(1)
    log_url = f"{_base(ready.id)}/deliveries?environment=sandbox"
    log = owner_client.get(log_url)
    assert log.headers["Cache-Control"] == "no-store"
    text = log.get_data(as_text=True)
    assert "Retrying" in text and "HTTP 500" in text and "The endpoint answered HTTP 500." in text

    # The owner redelivers at once rather than waiting.
    (delivery,) = _deliveries(session, ready.id)
    redeliver = f"{_base(ready.id)}/deliveries/{delivery.id}/redeliver"
    done = owner_client.post(
        redeliver, data={"csrf_token": csrf_token(owner_client, log_url), "environment": "sandbox"}
    )
    assert done.status_code == 303 and done.headers["Location"] == f"{_base(ready.id)}/deliveries"
    run_jobs(settings.redis_url, settings)
    _, delivered = receiver.wait_for(2)
    assert failed.headers["webhook-id"] == delivered.headers["webhook-id"] == delivery.id
    assert Webhook(secret).verify(delivered.body, delivered.headers) == payload

    text = owner_client.get(log_url).get_data(as_text=True)
    row = re.search(r'<tr class="delivery delivery-delivered".*?</tr>', text, re.S)
    assert row, text
    cells = [
        re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(0), re.S)
    ]
    assert cells[0] == "subscription.active" and cells[1].startswith("Delivered")
    assert cells[2] == "1" and cells[3] == "HTTP 200"  # a fresh schedule after the redeliver
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", cells[4])
    assert "Redeliver" in cells[5]
    (event,) = _audit(session, "event_forwarding.redeliver")
    assert event.details == {"mode": "test mode", "event_type": "subscription.active"}
    # The billing page lists it too, with the link to the log.
    page = _page(owner_client, ready.id)
    assert "delivery delivery-delivered" in page and "Delivery log of test mode" in page

    # Redelivered once more after delivery: sent again, the same id.
    owner_client.post(
        redeliver, data={"csrf_token": csrf_token(owner_client, log_url), "environment": "sandbox"}
    )
    run_jobs(settings.redis_url, settings)
    assert receiver.wait_for(3)[2].headers["webhook-id"] == delivery.id


def test_the_secret_appears_on_no_other_page_nor_in_logs(
    app: Flask,
    owner_client: FlaskClient,
    ready: Workspace,
    session: Session,
    settings: Settings,
    receiver: TenantApp,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    first = _set_up(owner_client, ready.id, receiver.url)
    rotate = f"{_base(ready.id)}/rotate"
    confirm = owner_client.get(f"{rotate}?environment=sandbox").get_data(as_text=True)
    version = re.search(r'name="version" type="hidden" value="([0-9a-f]+)"', confirm)
    assert version
    data = {
        "csrf_token": _token(owner_client, ready.id),
        "environment": "sandbox",
        "version": version.group(1),
    }
    second_page = owner_client.post(rotate, data=data).get_data(as_text=True)
    second = SECRET_RE.search(second_page)
    assert second
    _forward(session, settings, ready.id)
    run_jobs(settings.redis_url, settings)
    delivered = receiver.wait_for(1)[0]
    assert Webhook(first).verify(delivered.body, delivered.headers)
    assert Webhook(second.group(1)).verify(delivered.body, delivered.headers)

    pages = [
        f"/workspaces/{ready.id}/polar",
        f"/workspaces/{ready.id}/polar/status",
        f"{_base(ready.id)}/deliveries?environment=sandbox",
        f"{rotate}?environment=sandbox",
        f"{_base(ready.id)}/remove?environment=sandbox",
    ]
    for path in pages:
        response = owner_client.get(path)
        assert response.status_code == 200, path
        body = response.get_data(as_text=True)
        assert first not in body and second.group(1) not in body and not ANY_SECRET.search(body), path
    for secret in (first, second.group(1)):
        assert secret not in caplog.text and secret.removeprefix("whsec_") not in caplog.text
    audit = repr([(e.target_ids, e.details) for e in session.scalars(select(AuditEvent))])
    assert first not in audit and second.group(1) not in audit
    # A wrong secret does not verify what was sent.
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(delivered.body, delivered.headers)
    assert json.loads(delivered.body)["type"] == "subscription.active"


def test_another_workspaces_forwarding_does_not_exist_here(
    app: Flask,
    owner_client: FlaskClient,
    ready: Workspace,
    accounts: Accounts,
    session: Session,
    settings: Settings,
) -> None:
    stranger: User = accounts.user("stranger@example.com")
    theirs = accounts.workspace("Theirs", stranger)
    their_client = app.test_client()
    login(their_client, stranger.email)
    connect_and_provision(their_client, theirs.id, settings)
    _set_up(their_client, theirs.id, "https://theirs.example.com/hooks")
    _forward(session, settings, theirs.id)
    (their_delivery,) = _deliveries(session, theirs.id)
    _set_up(owner_client, ready.id, "https://mine.example.com/hooks")

    page = _page(owner_client, ready.id)
    assert "theirs.example.com" not in page
    token = _token(owner_client, ready.id)
    mine = owner_client.post(
        f"{_base(ready.id)}/deliveries/{their_delivery.id}/redeliver",
        data={"csrf_token": token, "environment": "sandbox"},
    )
    assert mine.status_code == 404
    assert owner_client.get(f"{_base(theirs.id)}/deliveries?environment=sandbox").status_code == 404
    assert _save(owner_client, theirs.id, "https://evil.example.com/hooks").status_code == 404
    their_endpoint = _endpoint(session, theirs.id)
    assert their_endpoint is not None and their_endpoint.url == "https://theirs.example.com/hooks"
