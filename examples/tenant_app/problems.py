"""What to tell a person when a call to Connect Polar fails: a title, what happened and what to do,
and the page's HTTP status."""

from __future__ import annotations

from dataclasses import dataclass

from .client import ApiError

NO_KEY = "no_api_key"
KEY_HELP = (
    "Create a test-mode key in the API keys section of your workspace's billing page on Connect "
    "Polar, then set CONNECT_POLAR_API_KEY to it and restart ExampleNotes, or paste it on the Setup "
    "page."
)


@dataclass(frozen=True)
class Problem:
    title: str
    message: str
    hint: str | None = None
    detail: str | None = None  # the platform's code and status, for whoever debugs it
    setup_link: bool = False  # the Setup page can fix it
    status: int = 502  # the status of the page that shows it


def no_key() -> ApiError:
    return ApiError(0, NO_KEY, "No API key of Connect Polar is set.")


def explain(error: ApiError, *, api_url: str) -> Problem:
    """The friendly version of ``error``."""
    detail = f"{error.code}, HTTP {error.status}" if error.status else error.code
    retry = f" Try again in {error.retry_after} s." if error.retry_after else " Try again in a moment."
    if error.code == NO_KEY:
        return Problem(
            "Connect ExampleNotes to Connect Polar",
            "ExampleNotes has no API key yet, so it cannot read your plans or billing.",
            KEY_HELP,
            setup_link=True,
            status=503,
        )
    if error.status == 401:
        return Problem(
            "Connect Polar refused the API key",
            "The key ExampleNotes sends is unknown, revoked or expired.",
            KEY_HELP,
            detail,
            setup_link=True,
            status=503,
        )
    if error.code in ("unreachable", "timeout"):
        return Problem(
            "Connect Polar cannot be reached",
            error.message,
            f"Is the platform running? (make run starts it locally.) ExampleNotes calls it at "
            f"{api_url}; set CONNECT_POLAR_URL if it runs elsewhere.",
            error.code,
            status=503,
        )
    if error.code == "not_ready":
        return Problem("Billing is not set up yet", error.message, None, detail, status=503)
    if error.code == "permissions_upgrade":
        return Problem("Billing needs Polar to be reconnected", error.message, None, detail, status=503)
    if error.status == 429:
        return Problem(
            "Too many requests",
            "ExampleNotes called Connect Polar too often.",
            retry.strip(),
            detail,
            status=503,
        )
    if error.code == "polar_busy":
        return Problem("Polar is busy", error.message, retry.strip(), detail, status=503)
    if error.code == "polar_unavailable":
        return Problem("Polar did not answer", error.message, None, detail)
    if error.status == 404 and error.code == "not_found":
        return Problem(
            "Connect Polar does not offer this yet",
            f"The platform at {api_url} has no such endpoint.",
            "Is CONNECT_POLAR_URL right, and is the platform up to date?",
            detail,
        )
    if error.status in (400, 422):
        return Problem("Connect Polar refused the request", error.message, None, detail)
    return Problem("Connect Polar answered with an error", error.message, None, detail)
