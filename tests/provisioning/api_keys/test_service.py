"""API keys in the domain: their shape, a hash and never the key stored, verification that tells
no reason apart, expiry and revocation, the last use recorded at most once a minute, and creation
refused in a mode the workspace has no connection in."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from provisioning.api_keys import service
from provisioning.api_keys.models import ApiKey, KeyMode
from provisioning.api_keys.service import ApiKeyRefused
from provisioning.config import PolarEnvironment, Settings
from provisioning.integrations.models import IntegrationStatus, PolarIntegration
from tests.factories import Owner

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def connection(session: Session, owner: Owner) -> PolarIntegration:
    integration = PolarIntegration(
        workspace_id=owner.workspace_id, environment=PolarEnvironment.SANDBOX, status=IntegrationStatus.READY
    )
    session.add(integration)
    session.commit()
    return integration


def _live_connection(session: Session, owner: Owner) -> None:
    live = PolarIntegration(
        workspace_id=owner.workspace_id,
        environment=PolarEnvironment.PRODUCTION,
        status=IntegrationStatus.READY,
    )
    session.add(live)
    session.commit()


def _create(session: Session, settings: Settings, owner: Owner, **kwargs) -> service.CreatedKey:
    kwargs = {"name": "deploy", "mode": KeyMode.TEST, "now": NOW, **kwargs}
    created = service.create(session, settings, workspace_id=owner.workspace_id, **kwargs)
    session.commit()
    return created


def test_a_key_is_shown_once_and_only_its_hash_is_kept(
    session: Session, settings: Settings, owner: Owner, connection: PolarIntegration
) -> None:
    created = _create(session, settings, owner, name="  Production  ", user_id=owner.user_id)
    plaintext, key = created.plaintext, created.key
    assert re.fullmatch(r"cp_test_[a-z0-9]{12}_[A-Za-z0-9_-]{43}", plaintext)
    assert plaintext not in repr(created)
    assert key.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert key.lookup_id == plaintext[8:20] and key.display_prefix == plaintext[:20]
    assert key.name == "Production" and key.created_by_user_id == owner.user_id
    assert key.environment == PolarEnvironment.SANDBOX and key.mode is KeyMode.TEST
    assert key.expires_at is None and key.last_used_at is None and key.revoked_at is None
    stored = session.execute(select(*ApiKey.__table__.columns)).one()
    assert plaintext not in repr(tuple(stored))
    # Each key is new.
    assert _create(session, settings, owner).plaintext != plaintext


def test_a_verified_key_comes_with_its_modes_connection_only(
    session: Session, settings: Settings, owner: Owner, connection: PolarIntegration
) -> None:
    plaintext = _create(session, settings, owner).plaintext
    _live_connection(session, owner)

    verified = service.verify_with_connection(session, plaintext, NOW)
    assert verified is not None and verified.key.mode is KeyMode.TEST
    assert verified.connection is not None and verified.connection.id == connection.id
    session.delete(connection)  # live mode only now: a test key has no connection, not the live one
    session.commit()
    verified = service.verify_with_connection(session, plaintext, NOW)
    assert verified is not None and verified.connection is None
    assert service.verify_with_connection(session, plaintext[:-1] + "x", NOW) is None


def test_verify_finds_the_key_and_nothing_else(
    session: Session, settings: Settings, owner: Owner, connection: PolarIntegration
) -> None:
    plaintext = _create(session, settings, owner).plaintext
    key = service.verify(session, plaintext, NOW)
    assert key is not None and key.workspace_id == owner.workspace_id
    for wrong in (
        "",
        plaintext[:-1],
        plaintext + "x",
        plaintext.upper(),
        plaintext.replace("cp_test_", "cp_live_"),
        plaintext[:21] + ("A" if plaintext[21] != "A" else "B") + plaintext[22:],
        plaintext[:20],
        f"cp_test_{'0' * 12}_{'a' * 43}",
        " " + plaintext,
        "\x00" * 80,
    ):
        assert service.verify(session, wrong, NOW) is None, wrong


def test_expired_and_revoked_keys_are_refused(
    session: Session, settings: Settings, owner: Owner, connection: PolarIntegration
) -> None:
    expiring = _create(session, settings, owner, expires_in_days=7)
    assert expiring.key.expires_at == NOW + timedelta(days=7)
    assert service.verify(session, expiring.plaintext, NOW + timedelta(days=7, seconds=-1)) is not None
    assert service.verify(session, expiring.plaintext, NOW + timedelta(days=7)) is None

    revoked = _create(session, settings, owner)
    assert service.revoke(session, revoked.key, user_id=owner.user_id, now=NOW) is True
    session.commit()
    assert revoked.key.revoked_at == NOW and revoked.key.revoked_by_user_id == owner.user_id
    assert service.verify(session, revoked.plaintext, NOW) is None
    # A second revocation changes nothing.
    assert service.revoke(session, revoked.key, now=NOW + timedelta(hours=1)) is False
    assert revoked.key.revoked_at == NOW and revoked.key.revoked_by_user_id == owner.user_id


def test_the_last_use_is_recorded_at_most_once_a_minute(
    session: Session, settings: Settings, owner: Owner, connection: PolarIntegration
) -> None:
    created = _create(session, settings, owner)
    key = created.key

    def used_at(when: datetime) -> datetime | None:
        found = service.verify(session, created.plaintext, when)
        assert found is not None
        service.record_use(session, found, when)
        session.commit()
        session.expire_all()
        return session.get(ApiKey, key.id).last_used_at  # type: ignore[union-attr]

    assert used_at(NOW) == NOW
    assert used_at(NOW + timedelta(seconds=59)) == NOW
    assert used_at(NOW + timedelta(seconds=61)) == NOW + timedelta(seconds=61)
    # Another process recorded a use meanwhile (its write is newer than what this one read): kept.
    stale = service.verify(session, created.plaintext, NOW)
    assert stale is not None
    stale.last_used_at = None  # as read before the other write
    session.expunge(stale)
    service.record_use(session, stale, NOW + timedelta(seconds=90))
    session.commit()
    session.expire_all()
    assert session.get(ApiKey, key.id).last_used_at == NOW + timedelta(seconds=61)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"name": "   "}, "name", "Give the key a name"),
        ({"name": "x" * 101}, "name", "at most 100 characters"),
        ({"name": "a\nb"}, "name", "not allowed"),
        ({"expires_in_days": 0}, "expires", "1 to 3650 days"),
        ({"expires_in_days": 3651}, "expires", "1 to 3650 days"),
        ({"mode": KeyMode.LIVE}, "mode", "no live-mode Polar connection"),
    ],
)
def test_creation_refused_says_why(
    session: Session,
    settings: Settings,
    owner: Owner,
    connection: PolarIntegration,
    kwargs: dict,
    field: str,
    message: str,
) -> None:
    with pytest.raises(ApiKeyRefused, match=message) as refused:
        _create(session, settings, owner, **kwargs)
    assert refused.value.field == field
    session.rollback()
    assert session.scalar(select(ApiKey.id)) is None


def test_keys_exist_only_in_modes_the_workspace_is_connected_in(
    session: Session, settings: Settings, owner: Owner, connection: PolarIntegration
) -> None:
    assert service.available_modes(session, settings, owner.workspace_id) == [KeyMode.TEST]
    connection.status = IntegrationStatus.NOT_CONNECTED  # disconnected: its history stays
    session.commit()
    assert service.available_modes(session, settings, owner.workspace_id) == []
    with pytest.raises(ApiKeyRefused, match="no test-mode Polar connection"):
        _create(session, settings, owner)
    # Live mode: connected, but not served by this deployment (sandbox only).
    _live_connection(session, owner)
    assert not settings.serves(PolarEnvironment.PRODUCTION)
    assert service.available_modes(session, settings, owner.workspace_id) == []


def test_keys_are_listed_and_found_within_their_workspace_only(
    session: Session, settings: Settings, owner: Owner, connection: PolarIntegration, make_owner
) -> None:
    first = _create(session, settings, owner, name="first").key
    second = _create(session, settings, owner, name="second", now=NOW + timedelta(seconds=1)).key
    other = make_owner("Other Workspace")
    assert [k.name for k in service.keys_of(session, owner.workspace_id)] == ["second", "first"]
    assert service.keys_of(session, other.workspace_id) == []
    assert service.key_in(session, owner.workspace_id, first.id) is first
    assert service.key_in(session, other.workspace_id, first.id) is None
    assert service.find(session, second.display_prefix) is second
    assert service.find(session, second.id) is second
    assert service.find(session, second.display_prefix.replace("cp_test_", "cp_live_")) is None
    assert service.find(session, "nothing") is None
