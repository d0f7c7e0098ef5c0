"""The RSA key that signs id_tokens: made once per process, published at /.well-known/jwks.json."""

from __future__ import annotations

from functools import lru_cache

from joserfc.jwk import KeySet, KeySetSerialization, RSAKey

ID_TOKEN_ALG = "RS256"


@lru_cache(maxsize=1)
def signing_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"use": "sig", "alg": ID_TOKEN_ALG}, auto_kid=True)


def jwks() -> KeySetSerialization:
    """The public half only, with ``kid``."""
    return KeySet([signing_key()]).as_dict(private=False)
