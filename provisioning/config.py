"""Settings from the environment, with the names of the project's seed documents."""

from __future__ import annotations

import base64
import binascii
import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from provisioning.errors import ConnectPolarError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PLANS_FILE = Path(__file__).resolve().parent / "catalog" / "default_plans.toml"
DEFAULT_DATABASE_URL = f"sqlite:///{ROOT / 'instance' / 'connect_polar.db'}"


class PolarEnvironment(enum.StrEnum):
    """Polar's two servers: separate accounts, organizations, tokens and OAuth clients."""

    SANDBOX = "sandbox"  # "test mode" on the owner's page
    PRODUCTION = "production"  # "live mode"

    @property
    def mode(self) -> str:
        return "test mode" if self is PolarEnvironment.SANDBOX else "live mode"


POLAR_URLS = {
    PolarEnvironment.SANDBOX: ("https://sandbox-api.polar.sh", "https://sandbox.polar.sh"),
    PolarEnvironment.PRODUCTION: ("https://api.polar.sh", "https://polar.sh"),
}
# Known development-only values: accepted locally, refused in production.
DEV_SECRET_KEY = "dev-only-secret-key-do-not-use-in-production"
APP_ENVS = ("development", "test", "production")
REDIS_SCHEMES = ("redis", "rediss", "unix")


class ConfigError(ConnectPolarError):
    """A setting is missing or unusable; the message names it."""


class EnvironmentNotServed(ConnectPolarError):
    """A connection belongs to a Polar environment this deployment no longer serves: its tokens are
    never sent anywhere else, so it is left alone."""

    def __init__(self, environment: str) -> None:
        super().__init__(
            f"This deployment no longer serves Polar's {environment} environment; "
            "the connection is kept as it is and not used"
        )
        self.environment = environment


@dataclass(frozen=True)
class PolarEndpoints:
    """One Polar environment as this deployment talks to it: its servers and our OAuth client."""

    environment: PolarEnvironment
    api_url: str
    web_url: str
    client_id: str = ""
    client_secret: str = ""
    redirect_uri: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.client_id and self.client_secret)

    @property
    def callback_path(self) -> str:
        """Where Polar sends the owner back: distinct per environment, so the callback knows which
        server issued the code (Polar sends no ``iss``; RFC 9700's mix-up defence)."""
        return urlsplit(self.redirect_uri).path or "/polar/callback"

    def __repr__(self) -> str:  # never print the client secret
        return f"PolarEndpoints({self.environment.value}, api_url={self.api_url!r})"


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
    polar_api_url: str = POLAR_URLS[PolarEnvironment.SANDBOX][0]
    polar_web_url: str = POLAR_URLS[PolarEnvironment.SANDBOX][1]
    polar_oauth_client_id: str = ""
    polar_oauth_client_secret: str = ""
    polar_oauth_redirect_uri: str = "http://127.0.0.1:5000/polar/callback"
    token_encryption_keys: list[bytes] = field(default_factory=list)
    # The other Polar environment, when the deployment serves both (POLAR_SANDBOX_* / POLAR_PRODUCTION_*).
    other_polar_environments: tuple[PolarEndpoints, ...] = ()
    # GET /metrics wants ``Authorization: Bearer <this>``; empty: served to loopback clients only.
    metrics_token: str = field(default="", repr=False)
    # RUN_LEASE_SECONDS: a running run's lease, renewed every third of it by its worker; when it
    # lapses (the worker was killed) the run is resumed. SWEEP_EVERY_SECONDS: the worker's sweeper.
    run_lease_seconds: float = 15.0
    sweep_every_seconds: float = 5.0
    # LOG_FORMAT: json (production's default) or console (readable lines, elsewhere's default).
    log_format: str = "console"

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def polar_configured(self) -> bool:
        return self.default_polar.configured

    @property
    def default_polar(self) -> PolarEndpoints:
        """The environment of POLAR_SERVER, with the seed's POLAR_OAUTH_* client."""
        return PolarEndpoints(
            environment=PolarEnvironment(self.polar_server),
            api_url=self.polar_api_url,
            web_url=self.polar_web_url,
            client_id=self.polar_oauth_client_id,
            client_secret=self.polar_oauth_client_secret,
            redirect_uri=self.polar_oauth_redirect_uri,
        )

    @property
    def polar_environments(self) -> dict[PolarEnvironment, PolarEndpoints]:
        """Every environment this deployment serves, the default first."""
        served = {self.default_polar.environment: self.default_polar}
        for endpoints in self.other_polar_environments:
            served.setdefault(endpoints.environment, endpoints)
        return served

    def serves(self, environment: str) -> bool:
        return environment in self.polar_environments

    def polar(self, environment: str | None = None) -> PolarEndpoints:
        """The endpoints and OAuth client of ``environment`` (default: POLAR_SERVER's). A stored
        token goes only to its own environment: one the deployment does not serve raises."""
        if environment is None:
            return self.default_polar
        try:
            return self.polar_environments[PolarEnvironment(environment)]
        except (KeyError, ValueError):
            raise EnvironmentNotServed(environment) from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        app_env = env.get("APP_ENV", "development").strip().lower()
        if app_env not in APP_ENVS:  # a typo ("prod") must never run as development
            raise ConfigError(f"APP_ENV must be development, test or production, not {app_env!r}")
        server = env.get("POLAR_SERVER", "sandbox").strip().lower()
        if server not in {e.value for e in PolarEnvironment}:
            raise ConfigError(f"POLAR_SERVER must be 'sandbox' or 'production', not {server!r}")
        default = PolarEnvironment(server)
        api_url, web_url = POLAR_URLS[default]
        named = {e: _environment_from_env(env, e) for e in PolarEnvironment}
        own = named[default]
        raw_keys = env.get("POLAR_TOKEN_ENCRYPTION_KEY", "")
        settings = cls(
            env=app_env,
            database_url=_normalise_db_url(env.get("DATABASE_URL") or DEFAULT_DATABASE_URL),
            redis_url=env.get("REDIS_URL") or "redis://127.0.0.1:6379/0",
            secret_key=env.get("SECRET_KEY") or DEV_SECRET_KEY,
            public_base_url=(env.get("PUBLIC_BASE_URL") or "http://127.0.0.1:5000").rstrip("/"),
            plans_file=Path(env.get("PLANS_FILE") or DEFAULT_PLANS_FILE),
            polar_server=server,
            polar_api_url=(env.get("POLAR_API_URL") or (own.api_url if own else api_url)).rstrip("/"),
            polar_web_url=(env.get("POLAR_WEB_URL") or (own.web_url if own else web_url)).rstrip("/"),
            polar_oauth_client_id=env.get("POLAR_OAUTH_CLIENT_ID") or (own.client_id if own else ""),
            polar_oauth_client_secret=env.get("POLAR_OAUTH_CLIENT_SECRET")
            or (own.client_secret if own else ""),
            polar_oauth_redirect_uri=env.get("POLAR_OAUTH_REDIRECT_URI")
            or (own.redirect_uri if own else "")
            or "http://127.0.0.1:5000/polar/callback",
            token_encryption_keys=parse_fernet_keys(raw_keys) if raw_keys.strip() else [],
            other_polar_environments=tuple(e for k, e in named.items() if e is not None and k != default),
            metrics_token=env.get("METRICS_TOKEN", "").strip(),
            run_lease_seconds=_seconds(env, "RUN_LEASE_SECONDS", 15.0),
            sweep_every_seconds=_seconds(env, "SWEEP_EVERY_SECONDS", 5.0),
            log_format=env.get("LOG_FORMAT", "").strip().lower()
            or ("json" if app_env == "production" else "console"),
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse to start with settings that cannot work, and production with a missing or weak
        secret, naming the setting."""
        if self.env not in APP_ENVS:
            raise ConfigError(f"APP_ENV must be development, test or production, not {self.env!r}")
        for name, url in self._urls():
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(f"{name} must be an http:// or https:// URL, not {url!r}")
        if self.log_format not in ("json", "console"):
            raise ConfigError(f"LOG_FORMAT must be json or console, not {self.log_format!r}")
        if self.metrics_token and len(self.metrics_token) < 16:
            raise ConfigError(
                "METRICS_TOKEN is too short: set at least 16 random characters, or leave it unset"
            )
        if urlsplit(self.redis_url).scheme not in REDIS_SCHEMES:
            raise ConfigError("REDIS_URL must be a redis://, rediss:// or unix:// URL")
        try:
            make_url(self.database_url)
        except ArgumentError:
            raise ConfigError("DATABASE_URL is not a database URL (e.g. postgresql://user@host/db)") from None
        paths: dict[str, PolarEnvironment] = {}
        for endpoints in self.polar_environments.values():
            other = paths.setdefault(endpoints.callback_path, endpoints.environment)
            if other != endpoints.environment:
                raise ConfigError(
                    f"Polar's {other.value} and {endpoints.environment.value} environments need distinct "
                    f"OAuth callback paths (both use {endpoints.callback_path}): set "
                    f"POLAR_{endpoints.environment.name}_OAUTH_REDIRECT_URI"
                )
        if not self.is_production:
            return
        if (
            not self.secret_key
            or self.secret_key == DEV_SECRET_KEY
            or len(self.secret_key) < 32
            or len(set(self.secret_key)) < 10  # "aaaa…", "abcabc…": long but guessable
        ):
            raise ConfigError(
                "SECRET_KEY is missing or weak: set at least 32 random characters in production"
            )
        if not self.token_encryption_keys:
            raise ConfigError(
                "POLAR_TOKEN_ENCRYPTION_KEY is missing: set one or more Fernet keys in production"
            )
        if not self.polar_configured:
            raise ConfigError("POLAR_OAUTH_CLIENT_ID and POLAR_OAUTH_CLIENT_SECRET must be set in production")
        for extra in self.other_polar_environments:
            if not extra.configured:
                raise ConfigError(
                    f"POLAR_{extra.environment.name}_OAUTH_CLIENT_SECRET must be set in production"
                )
        if self.database_url.startswith("sqlite"):
            raise ConfigError("DATABASE_URL points at SQLite: use PostgreSQL in production")
        # Polar refuses non-https webhook URLs, and the OAuth callback carries the code.
        for name, url in self._urls():
            if name.endswith(("_API_URL", "_WEB_URL")):
                continue  # Polar's own servers (a local Polar in tests)
            if not url.startswith("https://"):
                raise ConfigError(f"{name} must be an https:// URL in production, not {url!r}")

    def _urls(self) -> list[tuple[str, str]]:
        """Every URL setting, by the name of its variable."""
        urls = [
            ("PUBLIC_BASE_URL", self.public_base_url),
            ("POLAR_OAUTH_REDIRECT_URI", self.polar_oauth_redirect_uri),
            ("POLAR_API_URL", self.polar_api_url),
            ("POLAR_WEB_URL", self.polar_web_url),
        ]
        for e in self.other_polar_environments:
            prefix = f"POLAR_{e.environment.name}_"
            urls += [
                (prefix + "OAUTH_REDIRECT_URI", e.redirect_uri),
                (prefix + "API_URL", e.api_url),
                (prefix + "WEB_URL", e.web_url),
            ]
        return urls


def _environment_from_env(env: Mapping[str, str], environment: PolarEnvironment) -> PolarEndpoints | None:
    """``POLAR_SANDBOX_OAUTH_CLIENT_ID`` and friends: the environment's own OAuth client (and, for
    the local Polar, ``POLAR_SANDBOX_API_URL``/``_WEB_URL``). None when its client is not set."""
    prefix = f"POLAR_{environment.name}_"
    client_id = env.get(prefix + "OAUTH_CLIENT_ID", "")
    if not client_id:
        return None
    api_url, web_url = POLAR_URLS[environment]
    return PolarEndpoints(
        environment=environment,
        api_url=(env.get(prefix + "API_URL") or api_url).rstrip("/"),
        web_url=(env.get(prefix + "WEB_URL") or web_url).rstrip("/"),
        client_id=client_id,
        client_secret=env.get(prefix + "OAUTH_CLIENT_SECRET", ""),
        redirect_uri=env.get(prefix + "OAUTH_REDIRECT_URI")
        or f"http://127.0.0.1:5000/polar/callback/{environment.value}",
    )


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, not {raw!r}") from None
    if not 0 < value <= 3600:
        raise ConfigError(f"{name} must be between 0 and 3600 seconds, not {raw!r}")
    return value


def _normalise_db_url(url: str) -> str:
    """Accept Heroku-style ``postgres://`` URLs and use the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url
