"""Idempotent provisioning steps: read Polar, diff against the catalog, write only the difference."""
