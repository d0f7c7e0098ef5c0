"""Key rotation: after ``rotate_encryption`` the newest key alone decrypts every stored secret, each
bound to its row; a second run changes nothing; what cannot be read is reported, not fatal."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from provisioning.connect.models import PolarConnectAttempt
from provisioning.connect.service import begin_connect, complete_connect, verifier_slot
from provisioning.integrations.models import PolarIntegration
from provisioning.integrations.service import (
    SECRET_COLUMNS,
    SecretIntegrityError,
    decrypt_secret,
    secret_slot,
)
from provisioning.key_rotation import rotate_encryption
from provisioning.runs.jobs import provision
from provisioning.runs.models import RunStatus
from provisioning.runs.service import create_run
from provisioning.vault import Vault, VaultError
from tests.provisioning.conftest import consent


def _plaintexts(settings, integration) -> dict[str, str]:
    return {c: decrypt_secret(settings, integration.id, c, getattr(integration, c)) for c in SECRET_COLUMNS}


def _new_run(session, integration) -> str:
    run = create_run(session, integration, trigger="cli")
    session.commit()
    return run.id


def test_rotation_re_encrypts_every_secret_with_the_new_key(session, database, settings, connect):
    connected = connect()
    assert provision(connected.run.id, settings)["status"] == RunStatus.SUCCEEDED
    session.expire_all()
    integration = session.get(PolarIntegration, connected.integration.id)
    before = _plaintexts(settings, integration)
    used = session.query(PolarConnectAttempt).one()  # the connect's attempt, consumed
    assert used.consumed_at is not None
    verifier = Vault(settings.token_encryption_keys).decrypt(verifier_slot(used.nonce), used.code_verifier)

    new_key = Fernet.generate_key()
    rotated = settings.model_copy(
        update={"token_encryption_keys": [new_key, *settings.token_encryption_keys]}
    )
    progress: list[tuple[str, int, int]] = []
    report = rotate_encryption(database, rotated, lambda *p: progress.append(p))

    assert (report.rewritten, report.current, report.unreadable) == (4, 0, [])
    assert progress == [("polar_integration", 1, 1), ("polar_connect_attempt", 1, 1)]
    session.expire_all()
    new_only = settings.model_copy(update={"token_encryption_keys": [new_key]})
    assert _plaintexts(new_only, integration) == before
    assert Vault([new_key]).decrypt(verifier_slot(used.nonce), used.code_verifier) == verifier
    old_only = Vault(settings.token_encryption_keys)
    for column in SECRET_COLUMNS:
        with pytest.raises(VaultError):
            old_only.decrypt(secret_slot(integration.id, column), getattr(integration, column))
    # The platform keeps working with the new key alone.
    assert provision(_new_run(session, integration), new_only)["status"] == RunStatus.SUCCEEDED

    # Idempotent: a second run finds everything current and rewrites nothing.
    ciphertexts = [getattr(integration, c) for c in SECRET_COLUMNS]
    again = rotate_encryption(database, rotated)
    assert (again.rewritten, again.current, again.unreadable) == (0, 4, [])
    session.expire_all()
    assert [getattr(integration, c) for c in SECRET_COLUMNS] == ciphertexts


def test_legacy_ciphertexts_keep_working_until_rotation_binds_them(
    session, database, settings, connect, make_owner
):
    connected = connect()
    assert provision(connected.run.id, settings)["status"] == RunStatus.SUCCEEDED
    session.expire_all()
    integration = session.get(PolarIntegration, connected.integration.id)
    legacy = Fernet(settings.token_encryption_keys[0])  # as stored before secrets were bound
    plaintexts = _plaintexts(settings, integration)
    for column, plaintext in plaintexts.items():
        setattr(integration, column, legacy.encrypt(plaintext.encode()).decode())
    session.commit()
    assert provision(_new_run(session, integration), settings)["status"] == RunStatus.SUCCEEDED

    report = rotate_encryption(database, settings)  # same key: only the envelope changes

    assert (report.rewritten, report.current, report.unreadable) == (3, 1, [])  # the attempt was bound
    session.expire_all()
    assert _plaintexts(settings, integration) == plaintexts
    # Bound now: the same ciphertext read as another row's fails.
    with pytest.raises(SecretIntegrityError):
        decrypt_secret(settings, "another-row", "access_token", integration.access_token)


def test_a_connect_pending_across_a_rotation_completes_with_the_new_key_alone(
    session, database, settings, owner
):
    start = begin_connect(session, settings, workspace_id=owner.workspace_id, user_id=owner.user_id)
    session.commit()
    new_key = Fernet.generate_key()
    assert rotate_encryption(
        database,
        settings.model_copy(update={"token_encryption_keys": [new_key, *settings.token_encryption_keys]}),
    ).complete

    code, state = consent(start.authorize_url)
    new_only = settings.model_copy(update={"token_encryption_keys": [new_key]})
    integration = complete_connect(
        session, new_only, state=state, code=code, user_id=owner.user_id, browser_nonce=start.nonce
    )
    session.commit()
    assert integration.access_token


def test_unreadable_secrets_are_reported_and_the_rest_rotated(
    session, database, settings, connect, make_owner, owner
):
    a = connect()
    b = connect(who=make_owner("Beta Workspace"))
    session.expire_all()
    b.integration.access_token = a.integration.access_token  # moved from another row
    stray = begin_connect(session, settings, workspace_id=owner.workspace_id, user_id=owner.user_id)
    attempt = session.get(PolarConnectAttempt, stray.nonce)
    attempt.code_verifier = Fernet(Fernet.generate_key()).encrypt(b"lost").decode()  # no key reads it
    session.commit()

    new_key = Fernet.generate_key()
    report = rotate_encryption(
        database,
        settings.model_copy(update={"token_encryption_keys": [new_key, *settings.token_encryption_keys]}),
    )

    assert sorted(str(u.slot) for u in report.unreadable) == sorted(
        [
            f"polar_integration.access_token of row {b.integration.id}",
            f"polar_connect_attempt.code_verifier of row {stray.nonce}",
        ]
    )
    assert all("lost" not in u.reason for u in report.unreadable)
    # Everything else moved to the new key: A's secrets and B's refresh token, both used attempts.
    assert report.rewritten == 2 + 1 + 2  # A's two tokens, B's refresh token, two used attempts
    session.expire_all()
    new_only = settings.model_copy(update={"token_encryption_keys": [new_key]})
    decrypt_secret(new_only, a.integration.id, "access_token", a.integration.access_token)
    decrypt_secret(new_only, b.integration.id, "refresh_token", b.integration.refresh_token)
