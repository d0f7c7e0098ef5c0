"""The OAuth2 connect flow: single-use attempts with their PKCE verifiers, kept server-side."""
