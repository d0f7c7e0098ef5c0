"""The consent screen (polar.sh/oauth2/authorize) and the rules for what it may grant.

There is no login: the page picks one of the store's users instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from authlib.oauth2.rfc6749.errors import InvalidRequestError
from jinja2 import Environment, FileSystemLoader, select_autoescape

from polar_emulator.domain.store import Store, User
from polar_emulator.oauth.server import safe_description

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
)


def user_organizations(store: Store, user: User) -> list[dict[str, str]]:
    return [
        {"id": oid, "name": store.organizations[oid]["name"], "slug": store.organizations[oid]["slug"]}
        for oid in store.user_organization_ids(user.id)
    ]


def pick_user(store: Store, email: str | None) -> User | None:
    """The named user or, with no name, the first one (the seeded demo user)."""
    if email:
        return store.user_by_email(email)
    return next(iter(store.users.values()), None)


def resolve_organizations(store: Store, user: User, chosen: list[str], sub_type: str) -> list[str]:
    """Validate the consent's organization choice, as Polar's _resolve_organization_ids."""
    reachable = set(store.user_organization_ids(user.id))
    for oid in chosen:
        if oid not in reachable:
            raise InvalidRequestError(f"Organization {safe_description(oid)} is not accessible.")
    unique = list(dict.fromkeys(chosen))
    if sub_type == "organization" and len(unique) != 1:
        raise InvalidRequestError("Exactly one organization must be selected for sub_type=organization.")
    return unique


def render_consent(
    store: Store,
    *,
    client_name: str,
    scope: str,
    user: User,
    sub_type: str,
    query: list[tuple[str, str]],
) -> str:
    action_query = urlencode([(k, v) for k, v in query if k not in ("user", "organizations", "action")])
    context: dict[str, Any] = {
        "client_name": client_name,
        "scopes": scope.split(),
        "users": [u.email for u in store.users.values()],
        "user": user.email,
        "organizations": user_organizations(store, user),
        "orgs_by_user": {u.email: user_organizations(store, u) for u in store.users.values()},
        "single": sub_type == "organization",
        "action": f"/oauth2/authorize?{action_query}",
    }
    return _env.get_template("consent.html").render(**context)
