"""A small client of Connect Polar's tenant API (``/api/v1``, described at ``/api/v1/openapi.json``),
built on httpx. Every failure is an :class:`ApiError` carrying the platform's
``{"error": {"code", "message"}}``, or a code of ours when the platform could not be reached."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

USER_AGENT = "ExampleNotes/1.0 (an example tenant app of Connect Polar)"
TIMEOUT = httpx.Timeout(15.0, connect=5.0)


class ApiError(Exception):
    """The tenant API refused or failed a call. ``status`` is 0 when no answer came."""

    def __init__(self, status: int, code: str, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(f"{code} ({status}): {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class ConnectPolar:
    """The calls ExampleNotes makes, with one API key. Use it as a context manager (it holds one
    HTTP connection pool)."""

    def __init__(self, base_url: str, api_key: str, *, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=f"{self.base_url}/api/v1",
            headers={"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT},
            timeout=TIMEOUT,
            transport=transport,
        )

    def __enter__(self) -> ConnectPolar:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- the calls ---------------------------------------------------------------------------------

    def plans(self) -> dict[str, Any]:
        """``GET /plans``: the catalog as provisioned, each plan with its prices and benefits."""
        return self._object("GET", "/plans")

    def create_checkout(self, *, plan: str, external_customer_id: str, success_url: str) -> dict[str, Any]:
        """``POST /checkouts``: a Polar checkout for the plan; send the customer to its ``url``."""
        body = {"plan": plan, "external_customer_id": external_customer_id, "success_url": success_url}
        return self._object("POST", "/checkouts", body)

    def create_portal(self, *, external_customer_id: str) -> dict[str, Any]:
        """``POST /customer-portal``: a link to the customer's portal at Polar (``url``)."""
        return self._object("POST", "/customer-portal", {"external_customer_id": external_customer_id})

    def customer_state(self, external_id: str, *, from_polar: bool = False) -> dict[str, Any]:
        """``GET /customers/{external_id}/state``: active subscriptions, granted benefits, meters.
        ``from_polar``: as Polar has it this moment (``?source=polar``), e.g. right after a
        checkout, before the platform has had Polar's events."""
        query = "?source=polar" if from_polar else ""
        return self._object("GET", f"/customers/{quote(external_id, safe='')}/state{query}")

    def record_usage(self, events: list[dict[str, Any]]) -> dict[str, Any]:
        """``POST /usage``: usage events, stored by the platform (202) and sent on to Polar in the
        background; each event's ``status`` is ``accepted``, or ``duplicate`` for an
        ``external_id`` sent before."""
        return self._object("POST", "/usage", {"events": events})

    def usage_event(self, external_id: str) -> dict[str, Any]:
        """``GET /usage/{external_id}``: whether the event reached Polar (``status``)."""
        return self._object("GET", f"/usage/{quote(external_id, safe='')}")

    # -- plumbing ----------------------------------------------------------------------------------

    def _object(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        answer = self._call(method, path, body)
        if not isinstance(answer, dict):
            raise ApiError(502, "bad_answer", f"{method} {path} did not answer a JSON object.")
        return answer

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> object:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.TimeoutException:
            raise ApiError(
                0, "timeout", f"Connect Polar at {self.base_url} did not answer in time."
            ) from None
        except httpx.HTTPError as exc:
            raise ApiError(
                0, "unreachable", f"Nothing answered at {self.base_url} ({type(exc).__name__})."
            ) from None
        if response.is_success:
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError:
                raise ApiError(502, "bad_answer", f"{method} {path} did not answer JSON.") from None
        raise _error_of(response)


def _error_of(response: httpx.Response) -> ApiError:
    code, message = f"http_{response.status_code}", response.reason_phrase or "Error"
    try:
        error = response.json().get("error")
        if isinstance(error, dict):
            code = str(error.get("code") or code)
            message = str(error.get("message") or message)
    except (ValueError, AttributeError):
        pass
    retry_after = response.headers.get("Retry-After", "")
    return ApiError(
        response.status_code,
        code,
        message,
        retry_after=int(retry_after) if retry_after.isdigit() else None,
    )
