"""gunicorn's settings for the web process (Procfile: ``web: gunicorn -c gunicorn.conf.py wsgi:app``).

Every number comes from the environment through ``provisioning.config.GunicornSettings``
(``WEB_CONCURRENCY``, ``GUNICORN_THREADS``, ``GUNICORN_TIMEOUT``, ``GUNICORN_GRACEFUL_TIMEOUT``,
``GUNICORN_KEEPALIVE``, ``PORT``, ``FORWARDED_ALLOW_IPS``), the log format through ``Settings``.
An invalid one stops gunicorn as this file loads; the master then checks the plan catalog and the
encryption keys (against the database's key canary) in ``on_starting``, before it binds or forks:
bad configuration stops it with one line naming the setting, never a loop of workers failing to
boot. A worker that fails anyway exits with gunicorn's fatal code (``wsgi.py``), which stops the
master too.
"""

from __future__ import annotations

from typing import Any

from provisioning.config import ConfigError, GunicornSettings, Settings
from provisioning.observability import logs, multiproc

try:  # an invalid number, or any other invalid setting, stops the master here with one line
    _server = GunicornSettings.from_env()
    _settings = Settings.from_env()
except ConfigError as exc:
    from provisioning.startup import stop

    stop(exc, 1)

bind = [f"0.0.0.0:{_server.port}"]
workers = _server.web_concurrency
threads = _server.threads
worker_class = "gthread"
timeout = _server.timeout
graceful_timeout = _server.graceful_timeout
keepalive = _server.keepalive
# Trust no X-Forwarded-* header at gunicorn's level, not even from a local process: in production
# the app's ProxyFix trusts exactly one proxy hop (Heroku's router, a load balancer).
forwarded_allow_ips = _server.forwarded_allow_ips  # "" trusts no address
# The access log: method, path without its query string (the OAuth callback's carries the code and
# state), status, size, duration and user agent; no referrer (it may carry another page's query).
accesslog = "-"
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s" request_id=%({x-request-id}o)s'
errorlog = "-"
# gunicorn's own lines (and the access log) through the platform's structured formatter: JSON in
# production (or LOG_FORMAT=json), readable lines elsewhere; the app's lines share the handler.
logconfig_dict = logs.gunicorn_logconfig(_settings.log_format)


# Metrics: gunicorn's workers record into files under $PROMETHEUS_MULTIPROC_DIR/web (default
# instance/metrics/web), emptied here, before any worker starts; /metrics merges them.
multiproc.prepare("web")


def child_exit(server: Any, worker: Any) -> None:
    """A worker exited: drop its live gauges (prometheus-client's multiprocess documentation)."""
    multiproc.mark_process_dead(worker.pid)


def on_starting(server: Any) -> None:
    """In the master, before binding and forking: stop on any bad setting or wrong key."""
    from provisioning.startup import check_environment, stop

    try:
        check_environment()
    except ConfigError as exc:
        stop(exc)
    server.log.info("settings and encryption keys checked")
