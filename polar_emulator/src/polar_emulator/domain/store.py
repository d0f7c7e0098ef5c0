"""All of the emulator's state, in memory. A reset clears it and seeds it again.

Every request handler runs on the server's event loop and never awaits between reading and
writing the store, so each handler's change is atomic without locks.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from polar_emulator.clock import Clock, isoformat
from polar_emulator.config import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_USER_EMAIL,
    MULTI_ORG_USER_EMAIL,
    EmulatorConfig,
)
from polar_emulator.domain.oauth import AuthorizationCode, OAuth2Client, Token
from polar_emulator.domain.organizations import new_organization
from polar_emulator.tokens import new_id

REQUEST_LOG_SIZE = 50_000


@dataclass
class User:
    id: str
    email: str
    created_at: str


@dataclass
class Store:
    config: EmulatorConfig
    clock: Clock = field(default_factory=Clock)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.clock.reset()
        self.users: dict[str, User] = {}
        # Organizations are kept in their API shape (see domain/organizations.py).
        self.organizations: dict[str, dict[str, Any]] = {}
        # user id -> {organization id: role ("owner", "admin", "member", "finance")}
        self.memberships: dict[str, dict[str, str]] = defaultdict(dict)
        self.clients: dict[str, OAuth2Client] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.tokens_by_access: dict[str, Token] = {}
        self.tokens_by_refresh: dict[str, Token] = {}
        # Resource collections by name ("products", "benefits", ...): id -> API-shaped dict.
        self.collections: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        # Fault injection, rate limiting and the request log (see middleware.py).
        self.faults: list[dict[str, Any]] = []
        self.rate_limit_per_minute: int | None = None
        self.rate_windows: dict[str, tuple[int, int]] = {}  # client id -> (window start, count)
        # The newest calls only, so a long-running local Polar does not grow without bound.
        self.requests: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)
        # Extension point: modules keep their own state here, keyed by module name.
        self.extra: dict[str, Any] = {}
        if self.config.seed:
            self.seed()

    # -- users and organizations ---------------------------------------------------------

    def add_user(self, email: str) -> User:
        existing = self.user_by_email(email)
        if existing:
            return existing
        user = User(id=new_id(), email=email, created_at=isoformat(self.clock.now()))
        self.users[user.id] = user
        return user

    def user_by_email(self, email: str) -> User | None:
        email = email.strip().lower()
        return next((u for u in self.users.values() if u.email.lower() == email), None)

    def add_organization(self, name: str, slug: str, owner: User | None = None) -> dict[str, Any]:
        org = new_organization(isoformat(self.clock.now()), name=name, slug=slug)
        self.organizations[org["id"]] = org
        if owner is not None:
            self.memberships[owner.id][org["id"]] = "owner"
        return org

    def user_organization_ids(self, user_id: str) -> list[str]:
        return [oid for oid in self.memberships.get(user_id, {}) if oid in self.organizations]

    # -- OAuth ---------------------------------------------------------------------------

    def add_client(self, client: OAuth2Client) -> OAuth2Client:
        self.clients[client.client_id] = client
        return client

    def add_token(self, token: Token) -> Token:
        token.clock = self.clock
        self.tokens_by_access[token.access_token] = token
        if token.refresh_token:
            self.tokens_by_refresh[token.refresh_token] = token
        return token

    # -- seed ----------------------------------------------------------------------------

    def seed(self) -> None:
        """One demo user with one organization, one with two, and the demo client."""
        demo = self.add_user(DEMO_USER_EMAIL)
        self.add_organization("Demo Org", "demo-org", owner=demo)
        multi = self.add_user(MULTI_ORG_USER_EMAIL)
        self.add_organization("Acme", "acme", owner=multi)
        self.add_organization("Acme Labs", "acme-labs", owner=multi)
        self.add_client(
            OAuth2Client(
                client_id=DEMO_CLIENT_ID,
                client_secret=DEMO_CLIENT_SECRET,
                client_name="Connect Polar (local)",
                redirect_uris=list(self.config.demo_redirect_uris),
            )
        )


def now(store: Store) -> str:
    """The store's clock, as Polar formats timestamps."""
    return isoformat(store.clock.now())


def collection(store: Store, name: str) -> dict[str, dict[str, Any]]:
    """A resource collection by name ("products", "benefits", ...): id -> API-shaped dict."""
    return store.collections[name]
