"""The WSGI entry point: ``gunicorn -c gunicorn.conf.py wsgi:app`` and ``flask --app wsgi ...``.

Settings, the plan catalog and the encryption keys (against the database's key canary) are checked
before anything is served or run; a failure prints one line naming the setting and exits with
gunicorn's fatal boot code, so gunicorn stops instead of restarting workers forever.
"""

from app import create_app
from provisioning.config import ConfigError, Settings
from provisioning.db import get_database
from provisioning.observability import logs
from provisioning.startup import check_keys, stop

try:
    settings = Settings.from_env()
    logs.configure(settings.log_format)  # every line of the web and of `flask` commands, structured
    app = create_app(settings)
    check_keys(get_database(), settings)
except ConfigError as exc:
    stop(exc)
