"""Operators' endpoints: ``/healthz`` (the process is up), ``/readyz`` (it can serve: database at
the migrations' head, Redis, encryption keys) and ``/metrics`` (Prometheus, behind a token)."""
