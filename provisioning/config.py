"""Settings from the environment, with the names of the project's seed documents.

Every environment variable the platform reads is a field of one of the settings models here
(pydantic-settings), named by its ``validation_alias``: :class:`Settings` (the app, the worker and
every command), :class:`PolarSandboxSettings` and :class:`PolarProductionSettings` (an environment's
own client, ``POLAR_SANDBOX_*`` / ``POLAR_PRODUCTION_*``), :class:`GunicornSettings` (the web
server, ``gunicorn.conf.py``) and :class:`MetricsSettings` (``PROMETHEUS_MULTIPROC_DIR``).
:data:`SETTINGS_MODELS` lists them; a test holds the README's configuration table to their names.

``from_env`` reads one mapping (``os.environ`` or a test's dict) and nothing else: no ``.env`` file.
Constructed by field name (``Settings(env="test", ...)``), a model reads no environment at all. An
invalid value raises :class:`ConfigError` whose message starts with the variable's name and never
repeats a secret's value; secrets are left out of ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from pydantic import AliasGenerator, BeforeValidator, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from provisioning.errors import ConnectPolarError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PLANS_FILE = Path(__file__).resolve().parent / "catalog" / "default_plans.toml"
DEFAULT_DATABASE_URL = f"sqlite:///{ROOT / 'instance' / 'connect_polar.db'}"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_METRICS_DIR = ROOT / "instance" / "metrics"


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
# Polar's documented per-client limits (requests per minute): see ../shared/polar/NOTES.md.
POLAR_RATE_LIMITS = {PolarEnvironment.SANDBOX: 100, PolarEnvironment.PRODUCTION: 500}
# Known development-only values: accepted locally, refused in production.
DEV_SECRET_KEY = "dev-only-secret-key-do-not-use-in-production"
APP_ENVS = ("development", "test", "production")
LOG_FORMATS = ("json", "console")
DRIFT_POLICIES = ("restore", "report")
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
    # Polar's rate limit for our OAuth client here, shared by every workspace we serve
    # (POLAR_RATE_LIMIT_PER_MINUTE / POLAR_<ENV>_RATE_LIMIT_PER_MINUTE); None: Polar's published one.
    rate_limit_per_minute: int | None = None

    @property
    def rate_limit(self) -> int:
        """Requests per minute the shared budget allows this environment's client."""
        return self.rate_limit_per_minute or POLAR_RATE_LIMITS[self.environment]

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


# Each variable's parsing and range, as BeforeValidators: a ValueError's message follows the variable's
# name in the ConfigError (``RUN_LEASE_SECONDS must be a number of seconds, not 'soon'``). Only
# non-secret values are quoted back.


def _stripped(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


def _lowered(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def _app_env(value: object) -> object:
    value = _lowered(value)
    if value not in APP_ENVS:  # a typo ("prod") must never run as development
        raise ValueError(f"must be development, test or production, not {value!r}")
    return value


def _polar_server(value: object) -> object:
    value = _lowered(value)
    if value not in {e.value for e in PolarEnvironment}:
        raise ValueError(f"must be 'sandbox' or 'production', not {value!r}")
    return value


def _log_format(value: object) -> object:
    value = _lowered(value)
    if value not in LOG_FORMATS:
        raise ValueError(f"must be json or console, not {value!r}")
    return value


def _drift_policy(value: object) -> object:
    value = _lowered(value)
    if value not in DRIFT_POLICIES:
        raise ValueError(f"must be restore or report, not {value!r}")
    return value


def _url(value: object) -> object:
    return value.strip().rstrip("/") if isinstance(value, str) else value


def _database_url(value: object) -> object:
    return _normalise_db_url(value.strip()) if isinstance(value, str) else value


def _fernet_keys(value: object) -> object:
    if not isinstance(value, str):
        return value
    try:
        return parse_fernet_keys(value) if value.strip() else []
    except ConfigError as exc:  # its message names the variable and never the key
        raise ValueError(str(exc)) from None


def _seconds(value: object) -> float:
    raw = _stripped(value)
    try:
        seconds = float(str(raw))
    except ValueError:
        raise ValueError(f"must be a number of seconds, not {raw!r}") from None
    if not 0 < seconds <= 3600:
        raise ValueError(f"must be between 0 and 3600 seconds, not {raw!r}")
    return seconds


def _per_minute(value: object) -> int | None:
    raw = _stripped(value)
    if raw is None or raw == "":
        return None
    try:
        per_minute = int(str(raw))
    except ValueError:
        raise ValueError(f"must be a whole number of requests per minute, not {raw!r}") from None
    if not 1 <= per_minute <= 100_000:
        raise ValueError(f"must be between 1 and 100000, not {raw!r}")
    return per_minute


def _fraction(value: object) -> float:
    raw = _stripped(value)
    try:
        fraction = float(str(raw))
    except ValueError:
        raise ValueError(f"must be a fraction such as 0.2, not {raw!r}") from None
    if not 0 <= fraction <= 0.9:
        raise ValueError(f"must be between 0 and 0.9, not {raw!r}")
    return fraction


def _count(value: object) -> int:
    raw = _stripped(value)
    try:
        count = int(str(raw))
    except ValueError:
        count = 0
    if count < 1:
        raise ValueError(f"must be a whole number of at least 1, not {raw!r}")
    return count


AppEnv = Literal["development", "test", "production"]
Text = Annotated[str, BeforeValidator(_stripped)]
Url = Annotated[str, BeforeValidator(_url)]
Seconds = Annotated[float, BeforeValidator(_seconds)]
PerMinute = Annotated[int | None, BeforeValidator(_per_minute)]
Fraction = Annotated[float, BeforeValidator(_fraction)]
Count = Annotated[int, BeforeValidator(_count)]


def variable_of(field: FieldInfo) -> str | None:
    """The environment variable a field reads (its validation alias), if any."""
    return field.validation_alias if isinstance(field.validation_alias, str) else None


def _config_error(exc: ValidationError, model: type[BaseSettings]) -> ConfigError:
    """The first invalid setting, as one line that starts with its variable's name. The value is
    never repeated, except where a validator above quotes it (none of a secret's does)."""
    error = exc.errors(include_url=False, include_input=False)[0]
    where = str(error["loc"][0]) if error["loc"] else model.__name__
    field = model.model_fields.get(where)
    name = (variable_of(field) if field is not None else None) or where
    if error["type"] == "value_error":
        message = str(error.get("ctx", {}).get("error", error["msg"]))
    else:
        message = f"is invalid ({error['msg']})"
    return ConfigError(message if message.startswith(name) else f"{name} {message}")


class EnvironSource(PydanticBaseSettingsSource):
    """A settings source over one mapping (``os.environ`` or a test's dict): each field's variable,
    by its validation alias, and nothing else (no ``.env`` file). A blank variable counts as unset,
    so the default applies, except where a blank value is itself a mistake (APP_ENV, POLAR_SERVER)."""

    BLANK_IS_A_VALUE: ClassVar[frozenset[str]] = frozenset({"APP_ENV", "POLAR_SERVER"})

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        super().__init__(settings_cls)
        self.environ = environ

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        name = variable_of(field)
        value = self.environ.get(name) if name else None
        if value is not None and not value.strip() and name not in self.BLANK_IS_A_VALUE:
            value = None
        return value, name or field_name, False

    def __call__(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for field_name, field in self.settings_cls.model_fields.items():
            value, key, _ = self.get_field_value(field, field_name)
            if value is not None:
                values[key] = value
        return values


class EnvSettings(BaseSettings):
    """A frozen settings model whose fields read environment variables (their validation aliases).

    ``from_env`` reads the variables of one mapping; constructed by field name, the model reads no
    environment. Either way an invalid value raises :class:`ConfigError` naming the variable.
    """

    model_config = SettingsConfigDict(
        frozen=True, extra="ignore", validate_by_name=True, validate_by_alias=True
    )

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:  # its text would repeat the values, secrets included
            raise _config_error(exc, type(self)) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Only what the caller passes: from_env passes its mapping's variables (EnvironSource).
        return (init_settings,)

    @classmethod
    def variables(cls) -> dict[str, str]:
        """Field name -> the environment variable it reads."""
        return {name: var for name, field in cls.model_fields.items() if (var := variable_of(field))}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """The model from ``environ`` (default ``os.environ``): only its variables, nothing else."""
        return cls(**EnvironSource(cls, os.environ if environ is None else environ)())


class PolarEnvironmentSettings(EnvSettings):
    """One Polar environment's own OAuth client and servers, ``POLAR_SANDBOX_*`` or
    ``POLAR_PRODUCTION_*`` (a subclass per environment names the variables), for a deployment that
    serves both. The environment is served only when its client id is set."""

    environment: ClassVar[PolarEnvironment]

    oauth_client_id: str = ""
    oauth_client_secret: str = Field("", repr=False)
    oauth_redirect_uri: Text = ""  # unset: http://127.0.0.1:5000/polar/callback/<environment>
    api_url: Url = ""  # unset: Polar's own servers
    web_url: Url = ""
    rate_limit_per_minute: PerMinute = None  # unset: Polar's published limit

    def endpoints(self) -> PolarEndpoints | None:
        if not self.oauth_client_id:
            return None
        api_url, web_url = POLAR_URLS[self.environment]
        return PolarEndpoints(
            environment=self.environment,
            api_url=self.api_url or api_url,
            web_url=self.web_url or web_url,
            client_id=self.oauth_client_id,
            client_secret=self.oauth_client_secret,
            redirect_uri=self.oauth_redirect_uri
            or f"http://127.0.0.1:5000/polar/callback/{self.environment.value}",
            rate_limit_per_minute=self.rate_limit_per_minute,
        )


def _prefixed(prefix: str) -> SettingsConfigDict:
    """Each field reads ``<prefix><FIELD>``: ``POLAR_SANDBOX_`` + ``oauth_client_id``."""

    def variable(field_name: str) -> str:
        return prefix + field_name.upper()

    return SettingsConfigDict(alias_generator=AliasGenerator(validation_alias=variable))


class PolarSandboxSettings(PolarEnvironmentSettings):
    environment = PolarEnvironment.SANDBOX
    model_config = _prefixed("POLAR_SANDBOX_")


class PolarProductionSettings(PolarEnvironmentSettings):
    environment = PolarEnvironment.PRODUCTION
    model_config = _prefixed("POLAR_PRODUCTION_")


POLAR_ENVIRONMENT_SETTINGS: tuple[type[PolarEnvironmentSettings], ...] = (
    PolarSandboxSettings,
    PolarProductionSettings,
)


class Settings(EnvSettings):
    """The platform's settings (the web app, the worker and every ``flask`` command), each field
    from the environment variable its ``validation_alias`` names."""

    env: Annotated[AppEnv, BeforeValidator(_app_env)] = Field("development", validation_alias="APP_ENV")
    database_url: Annotated[str, BeforeValidator(_database_url)] = Field(
        DEFAULT_DATABASE_URL, validation_alias="DATABASE_URL"
    )
    redis_url: Text = Field(DEFAULT_REDIS_URL, validation_alias="REDIS_URL")
    secret_key: str = Field(DEV_SECRET_KEY, validation_alias="SECRET_KEY", repr=False)
    public_base_url: Url = Field("http://127.0.0.1:5000", validation_alias="PUBLIC_BASE_URL")
    plans_file: Path = Field(DEFAULT_PLANS_FILE, validation_alias="PLANS_FILE")
    polar_server: Annotated[Literal["sandbox", "production"], BeforeValidator(_polar_server)] = Field(
        "sandbox", validation_alias="POLAR_SERVER"
    )
    # Unset, these four (and the rate limit) come from POLAR_SERVER's environment: its own
    # POLAR_<ENV>_* client when that is set, else Polar's servers (see from_env).
    polar_api_url: Url = Field(POLAR_URLS[PolarEnvironment.SANDBOX][0], validation_alias="POLAR_API_URL")
    polar_web_url: Url = Field(POLAR_URLS[PolarEnvironment.SANDBOX][1], validation_alias="POLAR_WEB_URL")
    polar_oauth_client_id: str = Field("", validation_alias="POLAR_OAUTH_CLIENT_ID")
    polar_oauth_client_secret: str = Field("", validation_alias="POLAR_OAUTH_CLIENT_SECRET", repr=False)
    polar_oauth_redirect_uri: Text = Field(
        "http://127.0.0.1:5000/polar/callback", validation_alias="POLAR_OAUTH_REDIRECT_URI"
    )
    token_encryption_keys: Annotated[list[bytes], BeforeValidator(_fernet_keys)] = Field(
        default_factory=list, validation_alias="POLAR_TOKEN_ENCRYPTION_KEY", repr=False
    )
    # The other Polar environment, when the deployment serves both: built by from_env from
    # PolarSandboxSettings / PolarProductionSettings (POLAR_SANDBOX_* / POLAR_PRODUCTION_*).
    other_polar_environments: tuple[PolarEndpoints, ...] = ()
    # GET /metrics wants ``Authorization: Bearer <this>``; empty: served to loopback clients only.
    metrics_token: Text = Field("", validation_alias="METRICS_TOKEN", repr=False)
    # RUN_LEASE_SECONDS: a running run's lease, renewed every third of it by its worker; when it
    # lapses (the worker was killed) the run is resumed. SWEEP_EVERY_SECONDS: the worker's sweeper.
    run_lease_seconds: Seconds = Field(15.0, validation_alias="RUN_LEASE_SECONDS")
    sweep_every_seconds: Seconds = Field(5.0, validation_alias="SWEEP_EVERY_SECONDS")
    # POLAR_RATE_LIMIT_PER_MINUTE for POLAR_SERVER's environment (None: Polar's published limit).
    polar_rate_limit_per_minute: PerMinute = Field(None, validation_alias="POLAR_RATE_LIMIT_PER_MINUTE")
    # POLAR_RATE_INTERACTIVE_RESERVE: the share of each minute's budget background work (runs,
    # rollouts, health checks) may not take, kept for calls a person waits for. 5% is 25 calls a
    # minute in production: what goes unused is lost to a busy fleet, so keep it small.
    polar_rate_interactive_reserve: Fraction = Field(0.05, validation_alias="POLAR_RATE_INTERACTIVE_RESERVE")
    # LOG_FORMAT: json (production's default) or console (readable lines, elsewhere's default).
    log_format: Annotated[Literal["json", "console"], BeforeValidator(_log_format)] = Field(
        "console", validation_alias="LOG_FORMAT"
    )
    # POLAR_DRIFT_POLICY: what a change made at Polar to a product or benefit the catalog sets does.
    # restore: recorded, and a run puts the catalog's version back; report: recorded only (a run
    # started for another reason still puts it back).
    polar_drift_policy: Annotated[Literal["restore", "report"], BeforeValidator(_drift_policy)] = Field(
        "restore", validation_alias="POLAR_DRIFT_POLICY"
    )

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
            rate_limit_per_minute=self.polar_rate_limit_per_minute,
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
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Every variable of ``environ`` (default ``os.environ``) the models read, checked."""
        env = os.environ if environ is None else environ
        given = super().from_env(env)
        named = {model.environment: model.from_env(env).endpoints() for model in POLAR_ENVIRONMENT_SETTINGS}
        default = PolarEnvironment(given.polar_server)
        own = named[default]
        api_url, web_url = POLAR_URLS[default]
        # What a variable left unset takes: POLAR_SERVER's environment (its own POLAR_<ENV>_* client
        # when that is set, else Polar's servers), and LOG_FORMAT's default by APP_ENV.
        derived: dict[str, object] = {
            "polar_api_url": own.api_url if own else api_url,
            "polar_web_url": own.web_url if own else web_url,
            "polar_oauth_client_id": own.client_id if own else "",
            "polar_oauth_client_secret": own.client_secret if own else "",
            "polar_oauth_redirect_uri": own.redirect_uri if own else "http://127.0.0.1:5000/polar/callback",
            "polar_rate_limit_per_minute": own.rate_limit_per_minute if own else None,
            "log_format": "json" if given.is_production else "console",
            "other_polar_environments": tuple(e for k, e in named.items() if e is not None and k != default),
        }
        settings = given.model_copy(
            update={name: value for name, value in derived.items() if name not in given.model_fields_set}
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


class GunicornSettings(EnvSettings):
    """The web server's own settings, read by ``gunicorn.conf.py``."""

    port: Count = Field(8000, validation_alias="PORT")
    web_concurrency: Count = Field(2, validation_alias="WEB_CONCURRENCY")  # worker processes
    threads: Count = Field(4, validation_alias="GUNICORN_THREADS")  # per worker
    timeout: Count = Field(30, validation_alias="GUNICORN_TIMEOUT")  # seconds
    graceful_timeout: Count = Field(30, validation_alias="GUNICORN_GRACEFUL_TIMEOUT")
    keepalive: Count = Field(5, validation_alias="GUNICORN_KEEPALIVE")
    # Addresses gunicorn trusts for X-Forwarded-*: "" trusts none, not even a local process.
    forwarded_allow_ips: str = Field("", validation_alias="FORWARDED_ALLOW_IPS")


class MetricsSettings(EnvSettings):
    """Where processes keep prometheus-client's multiprocess files (``observability.multiproc``)."""

    prometheus_multiproc_dir: Path = Field(DEFAULT_METRICS_DIR, validation_alias="PROMETHEUS_MULTIPROC_DIR")


# Every settings model, so every variable the platform reads (held to the README by a test).
SETTINGS_MODELS: tuple[type[EnvSettings], ...] = (
    Settings,
    *POLAR_ENVIRONMENT_SETTINGS,
    GunicornSettings,
    MetricsSettings,
)


def app_env(environ: Mapping[str, str] | None = None) -> str:
    """APP_ENV alone, read and checked as :class:`Settings` reads it, for code outside a running app
    that must not depend on every other setting being valid. Raises ConfigError naming it."""
    given = EnvironSource(Settings, os.environ if environ is None else environ)().get("APP_ENV")
    return Settings(**({} if given is None else {"APP_ENV": given})).env


def _normalise_db_url(url: str) -> str:
    """Accept Heroku-style ``postgres://`` URLs and use the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url
