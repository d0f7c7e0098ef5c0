"""Talking to Polar: OAuth token endpoints (Authlib) and resource calls (polar-sdk)."""
