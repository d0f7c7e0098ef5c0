"""Errors raised by the Polar layer. Messages are for people and never contain a token."""

from __future__ import annotations

from provisioning.errors import ConnectPolarError


class ProvisioningError(ConnectPolarError):
    """Polar refused a call in a way retrying will not fix; the message says what to do."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None, needs_reconnect: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.needs_reconnect = needs_reconnect


class TransientPolarError(ProvisioningError):
    """Polar is unavailable or rate-limiting us beyond what waiting inline allows: retry the job later."""

    retryable = True


class RefreshUnanswered(TransientPolarError):
    """A token refresh reached Polar (or may have) but its answer was lost (a timeout after the
    request was sent, a 5xx): Polar may have rotated the pair, and the new one is lost with it."""


class PolarOAuthError(ConnectPolarError):
    """The token endpoint answered with an OAuth error; ``error`` is its code (e.g. ``invalid_grant``)."""

    def __init__(self, error: str, description: str | None = None, *, status: int | None = None) -> None:
        super().__init__(f"Polar OAuth error {error}" + (f": {description}" if description else ""))
        self.error = error
        self.description = description
        self.status = status


class PolarBusy(TransientPolarError):
    """Polar's rate limit for our OAuth client is used up (our shared budget, or a 429 from Polar)
    for ``retry_after`` seconds, longer than the caller may wait: a run is deferred until then."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message, status=429)
        self.retry_after = retry_after
