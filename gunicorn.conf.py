"""gunicorn's settings for the web process (Procfile: ``web: gunicorn -c gunicorn.conf.py wsgi:app``).

Every number comes from the environment (``WEB_CONCURRENCY``, ``GUNICORN_THREADS``,
``GUNICORN_TIMEOUT``, ``GUNICORN_GRACEFUL_TIMEOUT``, ``GUNICORN_KEEPALIVE``, ``PORT``). The master
checks the settings, the plan catalog and the encryption keys (against the database's key canary)
in ``on_starting``, before it binds or forks: bad configuration stops it with one line naming the
setting, never a loop of workers failing to boot. A worker that fails anyway exits with gunicorn's
fatal code (``wsgi.py``), which stops the master too.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from provisioning.observability import logs, multiproc


def _number(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        value = minimum - 1
    if value < minimum:
        print(
            f"Configuration error: {name} must be a whole number of at least {minimum}, not {raw!r}",
            file=sys.stderr,
        )
        raise SystemExit(1)
    return value


bind = [f"0.0.0.0:{_number('PORT', 8000)}"]
workers = _number("WEB_CONCURRENCY", 2)
threads = _number("GUNICORN_THREADS", 4)
worker_class = "gthread"
timeout = _number("GUNICORN_TIMEOUT", 30)
graceful_timeout = _number("GUNICORN_GRACEFUL_TIMEOUT", 30)
keepalive = _number("GUNICORN_KEEPALIVE", 5)
# Trust no X-Forwarded-* header at gunicorn's level, not even from a local process: in production
# the app's ProxyFix trusts exactly one proxy hop (Heroku's router, a load balancer).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "")  # "" trusts no address
# The access log: method, path without its query string (the OAuth callback's carries the code and
# state), status, size, duration and user agent; no referrer (it may carry another page's query).
accesslog = "-"
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s" request_id=%({x-request-id}o)s'
errorlog = "-"
# gunicorn's own lines (and the access log) through the platform's structured formatter: JSON in
# production (or LOG_FORMAT=json), readable lines elsewhere; the app's lines share the handler.
_log_format = os.environ.get("LOG_FORMAT", "").strip().lower() or (
    "json" if os.environ.get("APP_ENV", "").strip().lower() == "production" else "console"
)
logconfig_dict = logs.gunicorn_logconfig(_log_format if _log_format in logs.LOG_FORMATS else "console")


# Metrics: gunicorn's workers record into files under $PROMETHEUS_MULTIPROC_DIR/web (default
# instance/metrics/web), emptied here, before any worker starts; /metrics merges them.
multiproc.prepare("web")


def child_exit(server: Any, worker: Any) -> None:
    """A worker exited: drop its live gauges (prometheus-client's multiprocess documentation)."""
    multiproc.mark_process_dead(worker.pid)


def on_starting(server: Any) -> None:
    """In the master, before binding and forking: stop on any bad setting or wrong key."""
    from provisioning.config import ConfigError
    from provisioning.startup import check_environment, stop

    try:
        check_environment()
    except ConfigError as exc:
        stop(exc)
    server.log.info("settings and encryption keys checked")
