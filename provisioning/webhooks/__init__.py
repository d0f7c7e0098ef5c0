"""Webhook events Polar sends to an integration's endpoint: verified, deduplicated, recorded."""
