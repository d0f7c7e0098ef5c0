"""Flask extensions, created unbound and attached to an app in :func:`app.create_app`."""

from __future__ import annotations

from flask_login import LoginManager
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()
login_manager = LoginManager()
migrate = Migrate()
