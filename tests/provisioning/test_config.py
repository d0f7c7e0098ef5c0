"""Settings for one or both Polar environments, from the environment variables people set."""

from __future__ import annotations

import pytest

from provisioning.config import (
    ConfigError,
    EnvironmentNotServed,
    GunicornSettings,
    MetricsSettings,
    PolarEnvironment,
    Settings,
    app_env,
)

BASE = {
    "POLAR_OAUTH_CLIENT_ID": "polar_ci_default",
    "POLAR_OAUTH_CLIENT_SECRET": "polar_cs_default",
    "POLAR_OAUTH_REDIRECT_URI": "https://billing.example/polar/callback",
}


def test_the_seed_settings_serve_one_environment():
    settings = Settings.from_env(BASE)

    assert list(settings.polar_environments) == [PolarEnvironment.SANDBOX]
    sandbox = settings.polar("sandbox")
    assert (sandbox.api_url, sandbox.web_url) == ("https://sandbox-api.polar.sh", "https://sandbox.polar.sh")
    assert (sandbox.client_id, sandbox.callback_path) == ("polar_ci_default", "/polar/callback")
    assert settings.polar() == sandbox
    with pytest.raises(EnvironmentNotServed, match="production"):
        settings.polar("production")
    assert "polar_cs_default" not in repr(sandbox)


def test_a_deployment_serves_both_with_a_client_each():
    settings = Settings.from_env(
        {
            **BASE,
            "POLAR_PRODUCTION_OAUTH_CLIENT_ID": "polar_ci_live",
            "POLAR_PRODUCTION_OAUTH_CLIENT_SECRET": "polar_cs_live",
            "POLAR_PRODUCTION_OAUTH_REDIRECT_URI": "https://billing.example/polar/callback/production",
        }
    )

    assert list(settings.polar_environments) == [PolarEnvironment.SANDBOX, PolarEnvironment.PRODUCTION]
    live = settings.polar("production")
    assert (live.api_url, live.web_url) == ("https://api.polar.sh", "https://polar.sh")
    assert (live.client_id, live.client_secret) == ("polar_ci_live", "polar_cs_live")
    assert live.callback_path == "/polar/callback/production"
    assert settings.polar("sandbox").client_id == "polar_ci_default"


def test_the_environment_specific_names_also_configure_the_default_environment():
    settings = Settings.from_env(
        {
            "POLAR_SERVER": "production",
            "POLAR_PRODUCTION_OAUTH_CLIENT_ID": "polar_ci_live",
            "POLAR_PRODUCTION_OAUTH_CLIENT_SECRET": "polar_cs_live",
            "POLAR_PRODUCTION_API_URL": "http://127.0.0.1:8766",
        }
    )

    assert list(settings.polar_environments) == [PolarEnvironment.PRODUCTION]
    assert settings.polar().client_id == "polar_ci_live"
    assert settings.polar().api_url == "http://127.0.0.1:8766"


def test_two_environments_on_one_callback_path_are_refused():
    with pytest.raises(
        ConfigError, match="distinct OAuth callback paths.*POLAR_PRODUCTION_OAUTH_REDIRECT_URI"
    ):
        Settings.from_env(
            {
                **BASE,
                "POLAR_PRODUCTION_OAUTH_CLIENT_ID": "polar_ci_live",
                "POLAR_PRODUCTION_OAUTH_CLIENT_SECRET": "polar_cs_live",
                "POLAR_PRODUCTION_OAUTH_REDIRECT_URI": "https://billing.example/polar/callback",
            }
        )


def test_production_needs_the_second_environment_s_secret_and_https():
    production = {
        **BASE,
        "APP_ENV": "production",
        "SECRET_KEY": "Zq8vN2xR7kLp4TgW9mYc3HbD6sFj1UeA5nQo0iVr",
        "POLAR_TOKEN_ENCRYPTION_KEY": "0" * 64,
        "DATABASE_URL": "postgresql://db/connect_polar",
        "PUBLIC_BASE_URL": "https://billing.example",
        "POLAR_PRODUCTION_OAUTH_CLIENT_ID": "polar_ci_live",
        "POLAR_PRODUCTION_OAUTH_REDIRECT_URI": "https://billing.example/polar/callback/production",
    }
    with pytest.raises(ConfigError, match="POLAR_PRODUCTION_OAUTH_CLIENT_SECRET"):
        Settings.from_env(production)
    production["POLAR_PRODUCTION_OAUTH_CLIENT_SECRET"] = "polar_cs_live"
    production["POLAR_PRODUCTION_OAUTH_REDIRECT_URI"] = "http://billing.example/polar/callback/production"
    with pytest.raises(ConfigError, match="POLAR_PRODUCTION_OAUTH_REDIRECT_URI must be an https"):
        Settings.from_env(production)


PRODUCTION = {
    **BASE,
    "APP_ENV": "production",
    "SECRET_KEY": "Zq8vN2xR7kLp4TgW9mYc3HbD6sFj1UeA5nQo0iVr",
    "POLAR_TOKEN_ENCRYPTION_KEY": "0" * 64,
    "DATABASE_URL": "postgresql://db/connect_polar",
    "PUBLIC_BASE_URL": "https://billing.example",
}


def test_production_settings_that_hold_together_are_accepted():
    assert Settings.from_env(PRODUCTION).is_production


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"APP_ENV": "prod"}, "APP_ENV must be development, test or production, not 'prod'"),
        ({"APP_ENV": "staging"}, "APP_ENV must be"),
        ({"SECRET_KEY": "a" * 64}, "SECRET_KEY is missing or weak"),
        ({"SECRET_KEY": "too-short"}, "SECRET_KEY is missing or weak"),
        ({"POLAR_TOKEN_ENCRYPTION_KEY": ""}, "POLAR_TOKEN_ENCRYPTION_KEY is missing"),
        ({"POLAR_TOKEN_ENCRYPTION_KEY": "not-a-key"}, "POLAR_TOKEN_ENCRYPTION_KEY: key #1"),
        ({"PUBLIC_BASE_URL": "http://billing.example"}, "PUBLIC_BASE_URL must be an https:// URL"),
        ({"PUBLIC_BASE_URL": "billing.example"}, "PUBLIC_BASE_URL must be an http:// or https:// URL"),
        ({"REDIS_URL": "localhost:6379"}, "REDIS_URL must be a redis://"),
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL is not a database URL"),
        ({"POLAR_SERVER": "live"}, "POLAR_SERVER must be"),
        ({"APP_ENV": ""}, "APP_ENV must be development, test or production, not ''"),
        ({"RUN_LEASE_SECONDS": "soon"}, "RUN_LEASE_SECONDS must be a number of seconds, not 'soon'"),
        ({"SWEEP_EVERY_SECONDS": "0"}, "SWEEP_EVERY_SECONDS must be between 0 and 3600 seconds"),
        ({"POLAR_RATE_LIMIT_PER_MINUTE": "lots"}, "POLAR_RATE_LIMIT_PER_MINUTE must be a whole number"),
        ({"POLAR_SANDBOX_RATE_LIMIT_PER_MINUTE": "0"}, "POLAR_SANDBOX_RATE_LIMIT_PER_MINUTE must be between"),
        ({"POLAR_RATE_INTERACTIVE_RESERVE": "1"}, "POLAR_RATE_INTERACTIVE_RESERVE must be between 0 and 0.9"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT must be json or console, not 'xml'"),
        ({"METRICS_TOKEN": "short"}, "METRICS_TOKEN is too short"),
    ],
)
def test_an_invalid_setting_is_refused_naming_it(changes, named):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**PRODUCTION, **changes})
    assert str(caught.value).startswith(named), caught.value
    assert "\n" not in str(caught.value)


def test_a_misspelt_app_env_never_runs_as_development():
    with pytest.raises(ConfigError, match="APP_ENV"):
        Settings.from_env({"APP_ENV": "prod"})


def test_app_env_is_read_stripped_and_lowered_and_alone():
    assert Settings.from_env({"APP_ENV": " Test "}).env == "test"
    assert app_env({"APP_ENV": "PRODUCTION"}) == "production"  # without production's other settings
    assert app_env({}) == "development"
    with pytest.raises(ConfigError, match="^APP_ENV must be"):
        app_env({"APP_ENV": "prod"})


def test_a_blank_variable_takes_its_default():
    settings = Settings.from_env({"REDIS_URL": "", "RUN_LEASE_SECONDS": " ", "LOG_FORMAT": ""})
    assert (settings.redis_url, settings.run_lease_seconds, settings.log_format) == (
        "redis://127.0.0.1:6379/0",
        15.0,
        "console",
    )
    assert Settings.from_env(PRODUCTION).log_format == "json"


def test_only_the_mapping_given_is_read(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("APP_ENV", "test")
    monkeypatch.setenv("POLAR_OAUTH_CLIENT_ID", "from-the-process")
    monkeypatch.setenv("POLAR_PRODUCTION_OAUTH_CLIENT_ID", "from-the-process")

    settings = Settings.from_env({})
    assert (settings.env, settings.polar_oauth_client_id, settings.other_polar_environments) == (
        "development",
        "",
        (),
    )
    assert Settings(env="test").polar_oauth_client_id == ""  # by field name: no environment at all
    assert Settings.from_env().env == "test"  # without a mapping: the process's


def test_secrets_never_show_in_repr_or_errors():
    secrets = {
        "SECRET_KEY": "Zq8vN2xR7kLp4TgW9mYc3HbD6sFj1UeA5nQo0iVr",
        "POLAR_OAUTH_CLIENT_SECRET": "polar_cs_default",
        "METRICS_TOKEN": "metrics-token-0123456789",
        "POLAR_TOKEN_ENCRYPTION_KEY": "0" * 64,
        "POLAR_PRODUCTION_OAUTH_CLIENT_SECRET": "polar_cs_live",
    }
    settings = Settings.from_env(
        {
            **PRODUCTION,
            **secrets,
            "POLAR_PRODUCTION_OAUTH_CLIENT_ID": "polar_ci_live",
            "POLAR_PRODUCTION_OAUTH_REDIRECT_URI": "https://billing.example/polar/callback/production",
        }
    )
    shown = repr(settings) + str(settings)
    assert "PolarEndpoints(production" in shown  # the other environment is shown, without its secret
    for value in [*secrets.values(), repr(settings.token_encryption_keys[0])]:
        assert value not in shown

    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"POLAR_TOKEN_ENCRYPTION_KEY": "not-a-key-but-a-secret"})
    assert "not-a-key-but-a-secret" not in str(caught.value)
    with pytest.raises(ConfigError, match="^SECRET_KEY is invalid") as caught:
        Settings(secret_key=12345678901234567890)
    assert "12345678901234567890" not in str(caught.value)


def test_the_rate_limits_default_to_polar_s_published_ones():
    settings = Settings.from_env(
        {
            **BASE,
            "POLAR_PRODUCTION_OAUTH_CLIENT_ID": "polar_ci_live",
            "POLAR_PRODUCTION_OAUTH_CLIENT_SECRET": "polar_cs_live",
            "POLAR_PRODUCTION_OAUTH_REDIRECT_URI": "https://billing.example/polar/callback/production",
        }
    )
    assert (settings.polar("sandbox").rate_limit, settings.polar("production").rate_limit) == (100, 500)
    assert settings.polar_rate_interactive_reserve == 0.05

    settings = Settings.from_env(
        {
            **BASE,
            "POLAR_RATE_LIMIT_PER_MINUTE": "60",
            "POLAR_RATE_INTERACTIVE_RESERVE": "0.5",
            "POLAR_PRODUCTION_OAUTH_CLIENT_ID": "polar_ci_live",
            "POLAR_PRODUCTION_OAUTH_REDIRECT_URI": "https://billing.example/polar/callback/production",
            "POLAR_PRODUCTION_RATE_LIMIT_PER_MINUTE": "900",
        }
    )
    assert (settings.polar("sandbox").rate_limit, settings.polar("production").rate_limit) == (60, 900)
    assert settings.polar_rate_interactive_reserve == 0.5


def test_gunicorn_and_metrics_settings():
    assert GunicornSettings.from_env({}).model_dump() == {
        "port": 8000,
        "web_concurrency": 2,
        "threads": 4,
        "timeout": 30,
        "graceful_timeout": 30,
        "keepalive": 5,
        "forwarded_allow_ips": "",
    }
    assert GunicornSettings.from_env({"PORT": " 5000 ", "FORWARDED_ALLOW_IPS": "10.0.0.1"}).port == 5000
    with pytest.raises(ConfigError, match="^WEB_CONCURRENCY must be a whole number of at least 1, not '0'$"):
        GunicornSettings.from_env({"WEB_CONCURRENCY": "0"})
    assert (
        str(MetricsSettings.from_env({"PROMETHEUS_MULTIPROC_DIR": "/tmp/m"}).prometheus_multiproc_dir)
        == "/tmp/m"
    )


def test_a_copy_with_changes_keeps_the_rest():
    settings = Settings.from_env(BASE)
    changed = settings.model_copy(update={"env": "production"})
    assert changed.is_production and not settings.is_production
    assert changed.polar() == settings.polar()
