"""The endpoint's URL rules, its secret's life (made once, rotated with an overlap) and the key
rotation of the platform's encryption keys over forwarding's secrets."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.orm import Session

from provisioning.config import PolarEnvironment, Settings
from provisioning.db import Database
from provisioning.forwarding import service
from provisioning.forwarding.models import EventForwardEndpoint
from provisioning.integrations.models import PolarIntegration
from provisioning.key_rotation import rotate_encryption
from provisioning.vault import VaultError

SANDBOX, PRODUCTION = PolarEnvironment.SANDBOX, PolarEnvironment.PRODUCTION


@pytest.mark.parametrize(
    ("url", "environment", "message"),
    [
        ("", SANDBOX, "Give the URL"),
        ("ftp://app.example.com/hooks", SANDBOX, "must start with https://"),
        ("javascript:alert(1)", SANDBOX, "must start with https://"),
        ("file:///etc/passwd", SANDBOX, "must start with https://"),
        ("app.example.com/hooks", SANDBOX, "must start with https://"),
        ("https://user:pw@app.example.com/hooks", SANDBOX, "user name or password"),
        ("https://user@app.example.com/hooks", SANDBOX, "user name or password"),
        ("https:///hooks", SANDBOX, "needs a host name"),
        ("https://app.example.com:port/hooks", SANDBOX, "not a valid URL"),
        ("https://app.example.com/a b", SANDBOX, "spaces"),
        ("https://app.example.com/" + "a" * 2048, SANDBOX, "too long"),
        ("http://app.example.com/hooks", PRODUCTION, "Live mode sends events to https URLs only."),
    ],
)
def test_refused_urls_say_why(
    settings: Settings, url: str, environment: PolarEnvironment, message: str
) -> None:
    with pytest.raises(service.ForwardingRefused) as refused:
        service.check_url(settings, environment, url)
    assert message in str(refused.value)


def test_accepted_urls(settings: Settings) -> None:
    assert (
        service.check_url(settings, SANDBOX, " http://127.0.0.1:8000/hooks ") == "http://127.0.0.1:8000/hooks"
    )
    assert service.check_url(settings, PRODUCTION, "https://app.example.com/hooks?token=x") == (
        "https://app.example.com/hooks?token=x"
    )
    assert (
        service.url_for_audit("https://app.example.com:8443/hooks?token=x")
        == "https://app.example.com:8443/hooks"
    )


def test_a_production_deployment_wants_https_to_public_addresses(settings: Settings) -> None:
    production = settings.model_copy(update={"env": "production"})
    for url, message in [
        ("http://app.example.com/hooks", "https URLs only"),
        ("https://localhost/hooks", "platform's own machine"),
        ("https://127.0.0.1/hooks", "private or local"),
        ("https://10.1.2.3/hooks", "private or local"),
        ("https://169.254.169.254/latest", "private or local"),
        ("https://[::1]/hooks", "private or local"),
    ]:
        with pytest.raises(service.ForwardingRefused) as refused:
            service.check_url(production, SANDBOX, url)
        assert message in str(refused.value), url
    assert service.check_url(production, SANDBOX, "https://app.example.com/hooks")


def test_saving_again_changes_the_url_and_keeps_the_secret(
    session: Session, settings: Settings, integration: PolarIntegration
) -> None:
    first = service.save_endpoint(session, settings, integration, "https://app.example.com/hooks")
    session.commit()
    assert first.created and first.secret
    assert first.secret not in repr(first)

    again = service.save_endpoint(session, settings, integration, "https://app.example.com/hooks")
    moved = service.save_endpoint(session, settings, integration, "https://api.example.com/billing")
    session.commit()

    assert (again.created, again.changed, again.secret) == (False, False, None)
    assert (moved.created, moved.changed, moved.previous_url) == (
        False,
        True,
        "https://app.example.com/hooks",
    )
    endpoint = service.endpoint_of(session, integration.id)
    assert endpoint is not None and endpoint.url == "https://api.example.com/billing"
    assert service.signing_secrets(settings, endpoint) == [first.secret]


def test_rotating_twice_within_the_overlap_keeps_only_the_last_two(
    session: Session, settings: Settings, integration: PolarIntegration
) -> None:
    original = service.save_endpoint(session, settings, integration, "https://app.example.com/hooks").secret
    endpoint = service.endpoint_of(session, integration.id)
    assert endpoint is not None and original is not None
    second = service.rotate_secret(session, settings, endpoint).secret
    version = service.secret_version(endpoint)
    third = service.rotate_secret(session, settings, endpoint).secret

    assert service.signing_secrets(settings, endpoint) == [third, second]
    assert original not in service.signing_secrets(settings, endpoint)
    assert service.secret_version(endpoint) != version


def test_key_rotation_re_encrypts_forwarding_secrets(
    session: Session, database: Database, settings: Settings, integration: PolarIntegration
) -> None:
    original = service.save_endpoint(session, settings, integration, "https://app.example.com/hooks").secret
    endpoint = service.endpoint_of(session, integration.id)
    assert endpoint is not None
    current = service.rotate_secret(session, settings, endpoint).secret
    session.commit()

    new_key = Fernet.generate_key()
    rotated = settings.model_copy(
        update={"token_encryption_keys": [new_key, *settings.token_encryption_keys]}
    )
    report = rotate_encryption(database, rotated)

    assert report.complete and report.rows[EventForwardEndpoint.__tablename__] == 1
    assert report.rewritten >= 2
    session.expire_all()
    endpoint = service.endpoint_of(session, integration.id)
    assert endpoint is not None
    new_only = settings.model_copy(update={"token_encryption_keys": [new_key]})
    assert service.signing_secrets(new_only, endpoint) == [current, original]
    with pytest.raises(VaultError):
        service.signing_secrets(settings, endpoint)  # the old key alone reads nothing any more
    again = rotate_encryption(database, rotated)
    assert again.complete and again.rewritten == 0


def test_a_production_deployment_sends_nothing_to_a_host_resolving_to_a_private_address() -> None:
    import httpx

    attempt = service.Attempt(
        delivery_id="d",
        integration_id="i",
        number=1,
        event_type="order.paid",
        url="https://localhost:9/hooks",
        body="{}",
        public_only=True,
        secrets=(service.new_secret(),),
    )
    with httpx.Client() as client:
        outcome = service.send(attempt, client)
    assert not outcome.delivered and outcome.status_code is None
    assert outcome.error is not None and "private or local address" in outcome.error
