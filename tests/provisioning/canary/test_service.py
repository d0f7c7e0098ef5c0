"""The key canary: the first start with keys writes it, every later start must decrypt it."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from provisioning.canary.models import KeyCanary
from provisioning.canary.service import KeyCheck, verify_keys
from provisioning.config import ConfigError
from provisioning.key_rotation import rotate_encryption


def test_the_first_start_writes_the_canary_and_later_ones_verify_it(session, database, settings):
    assert verify_keys(database, settings) is KeyCheck.WRITTEN
    stored = session.get(KeyCanary, "token-encryption")
    assert stored is not None and "canary" not in stored.ciphertext
    assert verify_keys(database, settings) is KeyCheck.VERIFIED


def test_wrong_keys_are_refused_naming_the_setting(database, settings):
    verify_keys(database, settings)
    with pytest.raises(
        ConfigError, match="^POLAR_TOKEN_ENCRYPTION_KEY does not decrypt this database's key canary"
    ):
        verify_keys(database, settings.model_copy(update={"token_encryption_keys": [Fernet.generate_key()]}))


def test_missing_keys_are_refused_once_the_database_holds_secrets(database, settings, owner):
    no_keys = settings.model_copy(update={"token_encryption_keys": []})
    assert verify_keys(database, no_keys) is KeyCheck.NO_KEYS  # nothing stored yet: development
    verify_keys(database, settings)
    with pytest.raises(ConfigError, match="^POLAR_TOKEN_ENCRYPTION_KEY is missing"):
        verify_keys(database, no_keys)


def test_a_first_start_with_keys_that_do_not_read_the_stored_secrets_is_refused(
    session, database, settings, connect
):
    connect()  # secrets stored before there was a canary (an upgraded deployment)
    session.query(KeyCanary).delete()
    session.commit()
    with pytest.raises(ConfigError, match="^POLAR_TOKEN_ENCRYPTION_KEY does not decrypt the secrets stored"):
        verify_keys(database, settings.model_copy(update={"token_encryption_keys": [Fernet.generate_key()]}))
    assert session.query(KeyCanary).count() == 0  # nothing blessed
    assert verify_keys(database, settings) is KeyCheck.WRITTEN


def test_rotation_moves_the_canary_to_the_new_key(database, settings):
    verify_keys(database, settings)
    new_key = Fernet.generate_key()
    report = rotate_encryption(
        database,
        settings.model_copy(update={"token_encryption_keys": [new_key, *settings.token_encryption_keys]}),
    )
    assert report.complete and report.rows["key_canary"] == 1
    assert (
        verify_keys(database, settings.model_copy(update={"token_encryption_keys": [new_key]}))
        is KeyCheck.VERIFIED
    )


def test_a_database_not_yet_migrated_is_left_to_flask_db_upgrade(settings, tmp_path):
    from provisioning.db import Database, make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        assert verify_keys(Database(engine), settings) is KeyCheck.NOT_MIGRATED
    finally:
        engine.dispose()
