"""Settings for one or both Polar environments, from the environment variables people set."""

from __future__ import annotations

import pytest

from provisioning.config import ConfigError, EnvironmentNotServed, PolarEnvironment, Settings

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
