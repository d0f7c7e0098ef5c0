"""Event forwarding: each connection's billing events, once processed into its state, POSTed to an
endpoint in the tenant's own app, signed the Standard Webhooks way with a secret shown once.

Rows are the outbox (``event_forward_delivery``): ``service.record`` adds one in the transaction
that processed the event, and the delivery job (``tasks.deliver``) only drains them, in order of
creation, retrying with backoff.
"""
