"""Fixtures for the emulator's own tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from polar_emulator import EmulatorServer
from polar_emulator.config import DEMO_CLIENT_ID
from polar_emulator.domain.oauth import DEFAULT_CLIENT_SCOPE, Token
from polar_emulator.tokens import generate_token

IssueToken = Callable[..., str]


@pytest.fixture
def issue_token(emulator: EmulatorServer) -> IssueToken:
    """Put an access token straight into the emulator's store (the OAuth flow is tested on its own).

    ``issue_token("demo@polar.local", scope="products:read", organization_ids=[...])`` returns the
    access token string.
    """

    def issue(
        email: str = "demo@polar.local",
        *,
        scope: str = DEFAULT_CLIENT_SCOPE,
        organization_ids: list[str] | None = None,
        client_id: str = DEMO_CLIENT_ID,
    ) -> str:
        store = emulator.store
        user = store.user_by_email(email)
        assert user is not None, email
        token = Token(
            access_token=generate_token("polar_at_u_"),
            refresh_token=generate_token("polar_rt_u_"),
            client_id=client_id,
            user_id=user.id,
            scope=scope,
            issued_at=store.clock.time(),
            expires_in=864000,
            organization_ids=list(organization_ids or []),
        )
        store.add_token(token)
        return token.access_token

    return issue
