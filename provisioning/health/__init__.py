"""Health: a connection's (is its grant alive, with the scopes we need, and is our webhook endpoint
at Polar as it should be) and the deployment's readiness (``readiness``: database and migrations,
Redis, encryption keys)."""
