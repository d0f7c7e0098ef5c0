"""What an operator sees of the running platform: metrics (prometheus-client, in multiprocess mode
for gunicorn's workers and the worker's job processes). A leaf: it imports no other package of the domain, so
every package may record metrics."""
