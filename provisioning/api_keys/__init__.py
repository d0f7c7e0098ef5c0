"""API keys: how a tenant's own deployment calls the tenant API (``/api/v1``) for its workspace.

A key is shown once and stored only as a SHA-256 hash; its mode (test or live) picks the
workspace's connection it reads (sandbox or production).
"""
