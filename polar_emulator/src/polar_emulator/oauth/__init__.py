"""Polar's OAuth2 / OpenID Connect server, on Authlib."""
