"""Settings from the environment, with the names of the project's seed documents."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PLANS_FILE = Path(__file__).resolve().parent / "catalog" / "default_plans.toml"
DEFAULT_DATABASE_URL = f"sqlite:///{ROOT / 'instance' / 'connect_polar.db'}"

POLAR_URLS = {
    "sandbox": ("https://sandbox-api.polar.sh", "https://sandbox.polar.sh"),
    "production": ("https://api.polar.sh", "https://polar.sh"),
}
# Known development-only values: accepted locally, refused in production.
DEV_SECRET_KEY = "dev-only-secret-key-do-not-use-in-production"


class ConfigError(RuntimeError):
    """A setting is missing or unusable; the message names it."""


def parse_fernet_keys(raw: str) -> list[bytes]:
    """Comma-separated keys, each a Fernet key or 64 hex chars (``openssl rand -hex 32``).

    The first key encrypts; all of them decrypt, so keys can be rotated.
    """
    keys: list[bytes] = []
    for n, part in enumerate(p.strip() for p in raw.split(",")):
        if not part:
            continue
        if len(part) == 64:
            try:
                keys.append(base64.urlsafe_b64encode(bytes.fromhex(part)))
                continue
            except ValueError:
                pass
        try:
            Fernet(part.encode())
        except (ValueError, binascii.Error) as exc:
            raise ConfigError(
                f"POLAR_TOKEN_ENCRYPTION_KEY: key #{n + 1} is neither a Fernet key nor 64 hex characters"
            ) from exc
        keys.append(part.encode())
    if not keys:
        raise ConfigError("POLAR_TOKEN_ENCRYPTION_KEY is empty")
    return keys


@dataclass(frozen=True)
class Settings:
    env: str = "development"  # development | test | production
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str = "redis://127.0.0.1:6379/0"
    secret_key: str = DEV_SECRET_KEY
    public_base_url: str = "http://127.0.0.1:5000"
    plans_file: Path = DEFAULT_PLANS_FILE
    polar_server: str = "sandbox"
    polar_api_url: str = POLAR_URLS["sandbox"][0]
    polar_web_url: str = POLAR_URLS["sandbox"][1]
    polar_oauth_client_id: str = ""
    polar_oauth_client_secret: str = ""
    polar_oauth_redirect_uri: str = "http://127.0.0.1:5000/polar/callback"
    token_encryption_keys: list[bytes] = field(default_factory=list)

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def polar_configured(self) -> bool:
        return bool(self.polar_oauth_client_id and self.polar_oauth_client_secret)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        app_env = env.get("APP_ENV", "development").strip().lower()
        server = env.get("POLAR_SERVER", "sandbox").strip().lower()
        if server not in POLAR_URLS:
            raise ConfigError(f"POLAR_SERVER must be 'sandbox' or 'production', not {server!r}")
        api_url, web_url = POLAR_URLS[server]
        raw_keys = env.get("POLAR_TOKEN_ENCRYPTION_KEY", "")
        settings = cls(
            env=app_env,
            database_url=_normalise_db_url(env.get("DATABASE_URL") or DEFAULT_DATABASE_URL),
            redis_url=env.get("REDIS_URL") or "redis://127.0.0.1:6379/0",
            secret_key=env.get("SECRET_KEY") or DEV_SECRET_KEY,
            public_base_url=(env.get("PUBLIC_BASE_URL") or "http://127.0.0.1:5000").rstrip("/"),
            plans_file=Path(env.get("PLANS_FILE") or DEFAULT_PLANS_FILE),
            polar_server=server,
            polar_api_url=(env.get("POLAR_API_URL") or api_url).rstrip("/"),
            polar_web_url=(env.get("POLAR_WEB_URL") or web_url).rstrip("/"),
            polar_oauth_client_id=env.get("POLAR_OAUTH_CLIENT_ID", ""),
            polar_oauth_client_secret=env.get("POLAR_OAUTH_CLIENT_SECRET", ""),
            polar_oauth_redirect_uri=env.get("POLAR_OAUTH_REDIRECT_URI")
            or "http://127.0.0.1:5000/polar/callback",
            token_encryption_keys=parse_fernet_keys(raw_keys) if raw_keys.strip() else [],
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse to start production with a missing or weak secret, naming the setting."""
        if not self.is_production:
            return
        if not self.secret_key or self.secret_key == DEV_SECRET_KEY or len(self.secret_key) < 32:
            raise ConfigError(
                "SECRET_KEY is missing or weak: set at least 32 random characters in production"
            )
        if not self.token_encryption_keys:
            raise ConfigError(
                "POLAR_TOKEN_ENCRYPTION_KEY is missing: set one or more Fernet keys in production"
            )
        if not self.polar_configured:
            raise ConfigError("POLAR_OAUTH_CLIENT_ID and POLAR_OAUTH_CLIENT_SECRET must be set in production")
        if self.database_url.startswith("sqlite"):
            raise ConfigError("DATABASE_URL points at SQLite: use PostgreSQL in production")
        # Polar refuses non-https webhook URLs, and the OAuth callback carries the code.
        for name, url in (
            ("PUBLIC_BASE_URL", self.public_base_url),
            ("POLAR_OAUTH_REDIRECT_URI", self.polar_oauth_redirect_uri),
        ):
            if not url.startswith("https://"):
                raise ConfigError(f"{name} must be an https:// URL in production, not {url!r}")


def _normalise_db_url(url: str) -> str:
    """Accept Heroku-style ``postgres://`` URLs and use the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url
