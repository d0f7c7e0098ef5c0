"""Machine-to-machine URLs never open the browser session: the tenant API's requests get Flask's null
session (empty, and it refuses writes), so a cookie sent along is not even read, and no answer
carries ``Set-Cookie`` or ``Vary: Cookie``. (Polar's webhook deliveries never reach Flask:
``app.polar.webhooks``.) Every other URL keeps Flask's signed-cookie session."""

from __future__ import annotations

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from app.api.errors import is_api_path


class SessionInterface(SecureCookieSessionInterface):
    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if is_api_path(request.path):
            return self.make_null_session(app)
        return super().open_session(app, request)


def init_app(app: Flask) -> None:
    app.session_interface = SessionInterface()
