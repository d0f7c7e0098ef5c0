"""Discovery metadata, as Polar's get_server_metadata builds it (NOTES 1.2)."""

from __future__ import annotations

from typing import Any

from authlib.oauth2.rfc7636 import CodeChallenge

from polar_emulator.domain.oauth import SCOPES_SUPPORTED
from polar_emulator.oauth.keys import ID_TOKEN_ALG

ISSUER = "https://polar.sh"
# Introspection and revocation take basic or post, whatever the client registered.
ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]


def server_metadata(base_url: str) -> dict[str, Any]:
    """``base_url`` is this emulator's root; it stands for both polar.sh and api.polar.sh."""
    base = base_url.rstrip("/")
    return {
        "issuer": ISSUER,
        "authorization_endpoint": f"{base}/oauth2/authorize",
        "token_endpoint": f"{base}/v1/oauth2/token",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "userinfo_endpoint": f"{base}/v1/oauth2/userinfo",
        # RFC 7591/7592, see registration.py.
        "registration_endpoint": f"{base}/v1/oauth2/register",
        "scopes_supported": list(SCOPES_SUPPORTED),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        # "web" is Polar's first-party session grant; advertised, not emulated.
        "grant_types_supported": ["authorization_code", "refresh_token", "web"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "service_documentation": "https://polar.sh/docs",
        "revocation_endpoint": f"{base}/v1/oauth2/revoke",
        "revocation_endpoint_auth_methods_supported": list(ENDPOINT_AUTH_METHODS),
        "introspection_endpoint": f"{base}/v1/oauth2/introspect",
        "introspection_endpoint_auth_methods_supported": list(ENDPOINT_AUTH_METHODS),
        "code_challenge_methods_supported": list(CodeChallenge.SUPPORTED_CODE_CHALLENGE_METHOD),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ID_TOKEN_ALG],
        "claims_supported": ["sub", "name", "email", "email_verified"],
    }
