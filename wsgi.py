"""The WSGI entry point: ``gunicorn -c gunicorn.conf.py wsgi:app`` and ``flask --app wsgi ...``.

Settings, the plan catalog and the encryption keys (against the database's key canary) are checked
before anything is served or run; a failure prints one line naming the setting and exits with
gunicorn's fatal boot code, so gunicorn stops instead of restarting workers forever.
"""

from app import create_app
from provisioning.config import ConfigError
from provisioning.db import get_database
from provisioning.startup import check_keys, stop

try:
    app = create_app()
    check_keys(get_database(), app.extensions["connect_polar.settings"])
except ConfigError as exc:
    stop(exc)
