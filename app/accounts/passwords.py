"""Password hashing with Argon2id (argon2-cffi's defaults follow RFC 9106).

Only the test environment (``Settings.env == "test"``) uses argon2's cheapest parameters, so tests
do not spend a tenth of a second or more on each hash and sign-in; every other environment keeps the
defaults. A hash records its own parameters, so either kind verifies anywhere, and signing in with a
cheap hash outside the test environment rehashes it with the strong ones (``needs_rehash``).
"""

from __future__ import annotations

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app, has_app_context

from provisioning.config import app_env

_STRONG = PasswordHasher()  # RFC 9106's low-memory profile: t=3, m=64 MiB, p=4
_CHEAP = PasswordHasher.from_parameters(profiles.CHEAPEST)  # tests only: t=1, m=8 KiB, p=1
# Verified against when the email is unknown, so both paths take the same time.
_DUMMY_HASHES = {"strong": _STRONG.hash("not-a-real-password"), "cheap": _CHEAP.hash("not-a-real-password")}


def hasher_for(env: str) -> PasswordHasher:
    """The hasher of an environment (``Settings.env``): the cheap one for ``test`` only."""
    return _CHEAP if env == "test" else _STRONG


def _environment() -> str:
    """The running app's ``Settings.env``; outside an app, the ``APP_ENV`` it would start with."""
    if has_app_context():
        settings = current_app.extensions.get("connect_polar.settings")
        if settings is not None:
            return settings.env
    return app_env()  # read and checked as Settings reads it


def _hasher() -> PasswordHasher:
    return hasher_for(_environment())


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    hasher = _hasher()
    dummy = _DUMMY_HASHES["cheap" if hasher is _CHEAP else "strong"]
    try:
        return hasher.verify(password_hash or dummy, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher().check_needs_rehash(password_hash)
