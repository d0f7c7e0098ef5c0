"""Authlib request wrappers around Starlette requests, like Polar's StarletteOAuth2Request.

The body must already be read (``await request.form()``) before a wrapper is built: Authlib is
synchronous, and every handler does its store work without awaiting (see store.py).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from authlib.common.security import is_secure_transport
from authlib.oauth2.rfc6749 import JsonPayload, JsonRequest, OAuth2Payload, OAuth2Request
from starlette.datastructures import FormData, QueryParams
from starlette.requests import Request

from polar_emulator.domain.oauth import OAuth2Client


def _multi(items: list[tuple[str, Any]]) -> dict[str, list[str]]:
    values: dict[str, list[str]] = defaultdict(list)
    for key, value in items:
        if isinstance(value, str):
            values[key].append(value)
    return values


class StarletteOAuth2Payload(OAuth2Payload):
    """Query parameters and form fields, merged; a form field wins over a query parameter."""

    def __init__(self, query: QueryParams, form: FormData | None) -> None:
        query_lists = _multi(query.multi_items())
        form_lists = _multi(form.multi_items() if form is not None else [])
        self._datalist: defaultdict[str, list] = defaultdict(list, {**query_lists, **form_lists})
        # Mutable on purpose: the code grant fills in a missing ``scope`` (as Polar does).
        self._data: dict[str, str] = {k: v[0] for k, v in self._datalist.items() if v}

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list]:
        return self._datalist


class StarletteOAuth2Request(OAuth2Request):
    def __init__(self, request: Request, form: FormData | None) -> None:
        url = str(request.url)
        # The emulator may be served over plain http on any host; Authlib would refuse that.
        super().__init__(request.method, url if is_secure_transport(url) else "https://polar.local/")
        self.uri = url
        self.headers = request.headers
        self._request = request
        self._form_data: dict[str, str] = {}
        if form is not None:
            self._form_data = {k: v for k, v in form.items() if isinstance(v, str)}
        self.payload = StarletteOAuth2Payload(request.query_params, form)
        # Organizations the token will be narrowed to (empty: all of the user's).
        self.organization_ids: list[str] = []

    @property
    def args(self) -> dict[str, str]:
        return dict(self._request.query_params)

    @property
    def form(self) -> dict[str, str]:
        return self._form_data


class StarletteJsonPayload(JsonPayload):
    def __init__(self, data: Any) -> None:
        self._data = data

    @property
    def data(self) -> Any:
        return self._data


class StarletteJsonRequest(JsonRequest):
    """A JSON request (client registration). ``data`` is the body, already parsed and validated."""

    def __init__(self, request: Request, data: Any) -> None:
        super().__init__(request.method, str(request.url), request.headers)
        self.payload = StarletteJsonPayload(data if data is not None else {})
        self.path_params: dict[str, Any] = dict(request.path_params)
        self._request = request
        # The emulator has no web session: every registration caller is anonymous.
        self.user = None
        # Set by Authlib: the Bearer token's credential and the client it authenticates.
        self.credential: Any = None
        self.client: OAuth2Client | None = None

    def url_for(self, name: str, **path_params: Any) -> str:
        return str(self._request.url_for(name, **path_params))


async def read_oauth2_request(request: Request) -> StarletteOAuth2Request:
    """Read the body (the only await), then wrap the request for Authlib."""
    form = None
    if request.method == "POST":
        form = await request.form()
    return StarletteOAuth2Request(request, form)
