"""What the grants and the registration endpoints use of the authorization server: its store.

They are registered on :class:`~polar_emulator.oauth.server.AuthorizationServer`, which imports
them, so they know the server by this protocol only.
"""

from __future__ import annotations

from typing import Protocol

from polar_emulator.domain.store import Store


class ServerWithStore(Protocol):
    store: Store
