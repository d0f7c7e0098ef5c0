"""What an operator sees of the running platform: metrics (prometheus-client, multiprocess-aware)
and, for the web layer to serve, what a scrape and a readiness check read."""
