"""Usage events a tenant sends through the tenant API: stored first (the outbox), then ingested to
Polar in the background, in batches, each event once."""
