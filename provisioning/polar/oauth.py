"""Polar's OAuth2 token endpoints, through Authlib with ``client_secret_post``.

polar-sdk's own oauth2 token methods send empty bodies (NOTES 8.4), so every token-endpoint call
(code exchange, refresh, introspection, revocation) goes through Authlib's httpx client here.
"""

from __future__ import annotations

import base64
import hashlib
import os
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from authlib.integrations.httpx_client import OAuth2Client, OAuthError

from provisioning.config import PolarEndpoints
from provisioning.db import utcnow
from provisioning.observability import metrics
from provisioning.polar.client import take_budget
from provisioning.polar.errors import PolarBusy, PolarOAuthError, RefreshUnanswered, TransientPolarError
from provisioning.ratelimit import lanes
from provisioning.ratelimit.registry import budget_for

# OAuth error codes a refresh is counted by (anything else: other_error), a bounded label.
REFRESH_OUTCOMES = ("invalid_grant", "invalid_client", "unauthorized_client", "invalid_request", "http_error")


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    refresh_token: str | None
    expires_at: datetime | None
    scope: str

    def __repr__(self) -> str:  # never print tokens
        return f"TokenSet(scope={self.scope!r}, expires_at={self.expires_at!r})"


@dataclass(frozen=True)
class Introspection:
    active: bool
    scopes: frozenset[str]
    organization_ids: tuple[str, ...]  # empty means all of the user's organizations
    subject: str | None
    sub_type: str | None
    expires_at: datetime | None


def s256_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


_tls_contexts: dict[int, ssl.SSLContext] = {}


def _tls_context() -> ssl.SSLContext:
    """This process's TLS context for the token endpoints. Building one loads the CA bundle (about
    90 ms); a client per call with its own context cost every callback and refresh that much."""
    pid = os.getpid()
    context = _tls_contexts.get(pid)
    if context is None:
        context = _tls_contexts[pid] = httpx.create_ssl_context()
    return context


class PolarOAuth:
    """The token endpoints of one Polar environment, with that environment's own OAuth client."""

    def __init__(
        self, endpoints: PolarEndpoints, *, timeout: float = 10.0, caller: lanes.Caller | None = None
    ) -> None:
        """Each call first takes room in the budget of the environment's token endpoints (Polar counts
        them by address, not by client), in ``caller``'s lane (by default the lane of the context
        this is built in)."""
        self.endpoints = endpoints
        self.budget = budget_for(endpoints.api_url, token_endpoints=True)
        self.caller = caller or lanes.current()
        self.timeout = timeout
        self.token_url = f"{endpoints.api_url}/v1/oauth2/token"
        self.introspect_url = f"{endpoints.api_url}/v1/oauth2/introspect"
        self.revoke_url = f"{endpoints.api_url}/v1/oauth2/revoke"

    def _client(self) -> OAuth2Client:
        return OAuth2Client(
            verify=_tls_context(),
            client_id=self.endpoints.client_id,
            client_secret=self.endpoints.client_secret,
            token_endpoint_auth_method="client_secret_post",
            revocation_endpoint_auth_method="client_secret_post",
            redirect_uri=self.endpoints.redirect_uri,
            timeout=self.timeout,
        )

    def authorization_url(self, state: str, code_challenge: str, scopes: list[str]) -> str:
        query = {
            "response_type": "code",
            "client_id": self.endpoints.client_id,
            "redirect_uri": self.endpoints.redirect_uri,
            "scope": " ".join(scopes),
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        return f"{self.endpoints.web_url}/oauth2/authorize?{urlencode(query)}"

    def exchange_code(self, code: str, code_verifier: str) -> TokenSet:
        with self._client() as client:
            token = self._call(
                lambda: client.fetch_token(
                    self.token_url, grant_type="authorization_code", code=code, code_verifier=code_verifier
                )
            )
        return _token_set(token)

    def refresh(self, refresh_token: str) -> TokenSet:
        outcome = "unavailable"
        try:
            with self._client() as client:
                token = self._call(
                    lambda: client.refresh_token(self.token_url, refresh_token=refresh_token),
                    unanswered=RefreshUnanswered,
                )
            result = _token_set(token)
            outcome = "ok"
            return result
        except PolarOAuthError as exc:
            outcome = exc.error if exc.error in REFRESH_OUTCOMES else "other_error"
            raise
        finally:
            metrics.TOKEN_REFRESHES.labels(outcome).inc()

    def introspect(self, token: str) -> Introspection:
        with self._client() as client:
            response = self._call(lambda: client.introspect_token(self.introspect_url, token=token))
        data = _json(response)
        if not data.get("active"):
            return Introspection(False, frozenset(), (), None, None, None)
        exp = data.get("exp")
        return Introspection(
            active=True,
            scopes=frozenset(str(data.get("scope") or "").split()),
            organization_ids=tuple(data.get("organizations") or ()),
            subject=data.get("sub"),
            sub_type=data.get("sub_type"),
            expires_at=datetime.fromtimestamp(exp, tz=utcnow().tzinfo) if exp else None,
        )

    def revoke(self, token: str, token_type_hint: str | None = None) -> None:
        with self._client() as client:
            response = self._call(
                lambda: client.revoke_token(self.revoke_url, token=token, token_type_hint=token_type_hint)
            )
        _json(response)

    def _call(self, fn: Any, *, unanswered: type[TransientPolarError] = TransientPolarError) -> Any:
        """``unanswered``: what to raise when the request may have reached Polar but its answer was
        lost (a 5xx, a timeout or a broken connection after sending); a request that never left
        (no connection) is a plain TransientPolarError."""
        take_budget(self.budget, self.caller, "reach Polar's token endpoint")
        try:
            return fn()
        except OAuthError as exc:
            raise PolarOAuthError(exc.error or "oauth_error", exc.description) from None
        except httpx.HTTPStatusError as exc:
            status = exc.response.status_code
            if status == 429:
                wait = _retry_after(exc.response)
                if self.budget is not None and wait is not None:
                    self.budget.pause(wait)
                raise PolarBusy(
                    "Polar is rate-limiting our requests to its token endpoint; try again shortly",
                    retry_after=wait or 1.0,
                ) from None
            if status >= 500:
                raise unanswered(
                    f"Polar's token endpoint is unavailable (HTTP {status}); try again shortly", status=status
                ) from None
            raise PolarOAuthError("http_error", f"HTTP {status}", status=status) from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise TransientPolarError(f"Polar could not be reached ({type(exc).__name__})") from None
        except httpx.RequestError as exc:
            raise unanswered(f"Polar did not answer ({type(exc).__name__})") from None


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None


def _json(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 500 or response.status_code == 429:
        raise TransientPolarError(f"Polar's token endpoint is unavailable (HTTP {response.status_code})")
    try:
        data = response.json()
    except ValueError:
        data = {}
    if response.status_code >= 400 or (isinstance(data, dict) and "error" in data):
        error = data.get("error", "http_error") if isinstance(data, dict) else "http_error"
        raise PolarOAuthError(str(error), data.get("error_description"), status=response.status_code)
    return data if isinstance(data, dict) else {}


def _token_set(token: dict[str, Any]) -> TokenSet:
    expires_at = None
    if token.get("expires_at"):
        expires_at = datetime.fromtimestamp(int(token["expires_at"]), tz=utcnow().tzinfo)
    elif token.get("expires_in"):
        expires_at = utcnow() + timedelta(seconds=int(token["expires_in"]))
    return TokenSet(
        access_token=token["access_token"],
        refresh_token=token.get("refresh_token"),
        expires_at=expires_at,
        scope=str(token.get("scope") or ""),
    )
