"""The WSGI entry point: ``gunicorn wsgi:app`` and ``flask --app wsgi ...``."""

from app import create_app
from provisioning.config import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    raise SystemExit(f"Configuration error: {exc}") from None
