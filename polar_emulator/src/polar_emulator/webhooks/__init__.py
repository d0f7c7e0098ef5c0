"""The control API's webhook routes; events and their delivery live in ``domain.webhooks``."""
