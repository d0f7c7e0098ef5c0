"""What ExampleNotes needs to reach Connect Polar: the platform's URL, an API key of the workspace and
the secret that signs the billing events the platform forwards.

Each comes from the environment first (``CONNECT_POLAR_URL``, ``CONNECT_POLAR_API_KEY``,
``CONNECT_POLAR_WEBHOOK_SECRET``); the key and the secret may instead be pasted on the Setup page,
which keeps them in ``settings.json`` in the app's data directory (``TENANT_APP_DATA_DIR``, default
``instance/tenant_app``). The environment always wins.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

DEFAULT_URL = "http://127.0.0.1:5000"
DEFAULT_DATA_DIR = Path("instance") / "tenant_app"
KEY_PREFIXES = ("cp_test_", "cp_live_")
SECRET_PREFIX = "whsec_"

Source = Literal["environment", "setup"]


@dataclass(frozen=True)
class Config:
    """The app's start-up settings."""

    api_url: str = DEFAULT_URL
    api_key: str | None = None  # from the environment; None: the Setup page's, if any
    webhook_secret: str | None = None  # likewise
    data_dir: Path = DEFAULT_DATA_DIR
    secret_key: str | None = None  # signs the session cookie; None: one generated and kept in data_dir

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Config:
        return cls(
            api_url=(environ.get("CONNECT_POLAR_URL") or DEFAULT_URL).rstrip("/"),
            api_key=environ.get("CONNECT_POLAR_API_KEY", "").strip() or None,
            webhook_secret=environ.get("CONNECT_POLAR_WEBHOOK_SECRET", "").strip() or None,
            data_dir=Path(environ.get("TENANT_APP_DATA_DIR") or DEFAULT_DATA_DIR),
            secret_key=environ.get("TENANT_APP_SECRET_KEY") or None,
        )


@dataclass(frozen=True)
class Credentials:
    """The key and webhook secret in force now, and where each came from."""

    api_key: str | None
    api_key_source: Source | None
    webhook_secret: str | None
    webhook_secret_source: Source | None

    @property
    def masked_key(self) -> str | None:
        """The key as the billing page lists it (``cp_test_<lookup id>…``): never its secret part."""
        if self.api_key is None:
            return None
        return self.api_key[: len("cp_test_") + 12] + "…"

    @property
    def mode(self) -> str | None:
        if self.api_key is None:
            return None
        return "live" if self.api_key.startswith("cp_live_") else "test"


def check_api_key(value: str) -> str | None:
    """Why ``value`` cannot be a Connect Polar API key, or None."""
    if not value.startswith(KEY_PREFIXES):
        return "An API key of Connect Polar starts with cp_test_ or cp_live_."
    if any(c.isspace() for c in value):
        return "An API key has no spaces: copy it again from the billing page."
    return None


def check_webhook_secret(value: str) -> str | None:
    """Why ``value`` cannot be a webhook signing secret, or None."""
    if not value.startswith(SECRET_PREFIX):
        return "The signing secret starts with whsec_."
    try:
        encoded = value[len(SECRET_PREFIX) :]
        decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if not decoded:
        return "This is not a whole signing secret: copy it again from the billing page."
    return None


class CredentialStore:
    """The environment's values over those pasted on the Setup page (``settings.json``)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.path = config.data_dir / "settings.json"

    def _stored(self) -> dict[str, str]:
        try:
            loaded = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(loaded, dict):
            return {}
        return {k: v for k, v in loaded.items() if isinstance(k, str) and isinstance(v, str) and v}

    def current(self) -> Credentials:
        stored = self._stored()
        key, key_source = self._pick(self.config.api_key, stored.get("api_key"))
        secret, secret_source = self._pick(self.config.webhook_secret, stored.get("webhook_secret"))
        return Credentials(key, key_source, secret, secret_source)

    @staticmethod
    def _pick(from_env: str | None, stored: str | None) -> tuple[str | None, Source | None]:
        if from_env:
            return from_env, "environment"
        if stored:
            return stored, "setup"
        return None, None

    def save(self, *, api_key: str | None = None, webhook_secret: str | None = None) -> None:
        """Keep the values given (None: leave as it is), readable by this user only."""
        stored = self._stored()
        if api_key is not None:
            stored["api_key"] = api_key
        if webhook_secret is not None:
            stored["webhook_secret"] = webhook_secret
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".tmp")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            json.dump(stored, file, indent=2)
        partial.replace(self.path)


def session_secret(config: Config) -> str:
    """The key that signs the session cookie: the configured one, else one made once and kept."""
    if config.secret_key:
        return config.secret_key
    path = config.data_dir / "secret_key"
    try:
        existing = path.read_text().strip()
    except OSError:
        existing = ""
    if existing:
        return existing
    config.data_dir.mkdir(parents=True, exist_ok=True)
    made = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(made + "\n")
    return made
