"""Bearer-token authentication of resource calls, scopes, roles and organization rules.

Mirrors Polar: a user token reaches the user's organizations, narrowed to the ones chosen at
consent (none chosen means all); create calls need ``organization_id`` unless the token reaches
exactly one organization; roles add permissions on top of scopes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from starlette.requests import Request

from polar_emulator.domain.oauth import OAuth2Client, Token
from polar_emulator.domain.store import Store, User
from polar_emulator.errors import (
    ApiError,
    insufficient_scope,
    invalid_token,
    not_found,
    not_permitted,
    unauthorized,
    validation_error,
    validation_item,
)

# Which roles hold which organization permission (Polar's auth/permission.py).
PERMISSIONS: dict[str, frozenset[str]] = {
    "organization:manage": frozenset({"owner", "admin"}),
    "products:manage": frozenset({"owner", "admin", "member"}),
    "events:ingest": frozenset({"owner", "admin", "member"}),
    "customers:manage": frozenset({"owner", "admin", "member"}),
}


def get_store(request: Request) -> Store:
    return request.app.state.store


def note(request: Request, **values: str | None) -> None:
    """Record facts about the call (``client_id``, ``organization_id``) for the request log."""
    request.scope.setdefault("emulator", {}).update(values)


@dataclass
class AuthSubject:
    token: Token
    user: User
    client: OAuth2Client
    store: Store

    @property
    def scopes(self) -> set[str]:
        return self.token.scopes()

    def organization_ids(self) -> list[str]:
        """Organizations this token reaches: live membership, narrowed by the consent's choice."""
        member_of = self.store.user_organization_ids(self.user.id)
        if not self.token.organization_ids:
            return member_of
        return [oid for oid in member_of if oid in self.token.organization_ids]

    def role_in(self, organization_id: str) -> str | None:
        return self.store.memberships.get(self.user.id, {}).get(organization_id)

    def can(self, organization_id: str, permission: str) -> bool:
        return self.role_in(organization_id) in PERMISSIONS[permission]

    def require(self, organization_id: str, permission: str, action: str) -> None:
        if not self.can(organization_id, permission):
            raise not_permitted(f"You don't have permission to {action}.")


def authenticate(request: Request, scopes: Iterable[str]) -> AuthSubject:
    """Authenticate the Bearer token; it needs at least one of ``scopes``."""
    store = get_store(request)
    header = request.headers.get("authorization")
    if not header:
        raise unauthorized()
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise unauthorized()
    token = store.tokens_by_access.get(value.strip())
    if token is None or not token.is_usable_access_token():
        raise invalid_token()
    user = store.users.get(token.user_id)
    client = store.clients.get(token.client_id)
    if user is None or client is None:
        raise invalid_token()
    note(request, client_id=client.client_id)
    required = list(scopes)
    if required and not (token.scopes() & set(required)):
        raise insufficient_scope(required)
    return AuthSubject(token=token, user=user, client=client, store=store)


def payload_organization(request: Request, subject: AuthSubject, organization_id: str | None) -> str:
    """Resolve ``organization_id`` of a create body, as Polar's get_payload_organization."""
    reachable = subject.organization_ids()
    if organization_id is None:
        if subject.token.organization_ids and len(reachable) == 1:
            note(request, organization_id=reachable[0])
            return reachable[0]
        raise validation_error(
            validation_item(["body", "organization_id"], "organization_id is required.", "missing", None)
        )
    if organization_id not in reachable:
        raise validation_error(
            validation_item(
                ["body", "organization_id"], "Organization not found.", "value_error", organization_id
            )
        )
    note(request, organization_id=organization_id)
    return organization_id


def list_organization_ids(request: Request, subject: AuthSubject) -> set[str]:
    """Organizations a list call covers: the ``organization_id`` filter within what the token reaches."""
    reachable = subject.organization_ids()
    wanted = request.query_params.getlist("organization_id")
    if wanted:
        if len(wanted) == 1:
            note(request, organization_id=wanted[0])
        return {oid for oid in wanted if oid in reachable}
    return set(reachable)


def reachable_or_404(request: Request, subject: AuthSubject, obj: dict | None) -> dict:
    """An object the token cannot reach does not exist."""
    if obj is None or obj.get("organization_id") not in subject.organization_ids():
        raise not_found()
    note(request, organization_id=obj["organization_id"])
    return obj


__all__ = [
    "ApiError",
    "AuthSubject",
    "authenticate",
    "get_store",
    "list_organization_ids",
    "note",
    "payload_organization",
    "reachable_or_404",
]
