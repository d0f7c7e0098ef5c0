"""The live platform as the browser tests see it: its URL, and committed users and workspaces.

The ``live_platform`` fixture (``tests/browser/conftest.py``) yields a :class:`LivePlatform`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flask import Flask
from playwright.sync_api import Page, expect
from polar_emulator import EmulatorServer
from sqlalchemy.orm import Session

from provisioning.config import Settings
from provisioning.db import Database
from tests import factories

PASSWORD = factories.PASSWORD
PAGE_SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "pages"


AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
# axe-core's impacts that fail a test; "moderate" and "minor" are reported by axe but tolerated.
BLOCKING_IMPACTS = ("serious", "critical")


def assert_accessible(page: Page) -> None:
    """Run axe-core (vendored, tests/browser/vendor/) on the page as it is now: no serious or
    critical violation (WCAG 2.x A/AA rules and axe's best practices)."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        # Not page.add_script_tag: the pages' Content-Security-Policy (script-src 'self') rightly
        # refuses an inline script. The DevTools protocol's evaluation is not the page's script.
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    results = page.evaluate("async () => await window.axe.run(document, {resultTypes: ['violations']})")
    blocking = [v for v in results["violations"] if v.get("impact") in BLOCKING_IMPACTS]
    assert not blocking, f"axe-core on {page.url}:\n" + "\n".join(
        f"- {v['id']} ({v['impact']}): {v['help']}: " + "; ".join(n["target"][0] for n in v["nodes"][:5])
        for v in blocking
    )


def shot(page: Page, name: str) -> None:
    """With ``PAGE_SHOTS=1`` in the environment, a full-page screenshot at
    ``test-artifacts/pages/<name>.png``: what a page looks like, to review a change by eye."""
    if os.environ.get("PAGE_SHOTS"):
        PAGE_SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=PAGE_SHOTS / f"{name}.png", full_page=True)


@dataclass(frozen=True)
class UserRef:
    id: str
    email: str
    password: str | None  # None: a user who cannot sign in


@dataclass(frozen=True)
class WorkspaceRef:
    id: str
    name: str
    owner: UserRef


@dataclass
class LivePlatform:
    """The platform as a browser meets it. ``base_url`` has no trailing slash; pages opened by
    ``new_page``/``page`` resolve relative URLs against it (``page.goto("/login")``)."""

    base_url: str
    app: Flask  # the app the server serves
    settings: Settings
    env: dict[str, str]  # the worker's environment (what ``Settings.from_env`` reads)
    database: Database  # committed: what you write in ``transaction()`` the server sees
    polar: EmulatorServer  # the local Polar (sandbox); ``polar.store`` is its state, read directly
    polar_client_id: str
    polar_client_secret: str
    worker_log: Path

    def url(self, path: str = "/") -> str:
        return self.base_url + path

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session on the platform's database, committed at the end of the block, inside the app's
        context (passwords are hashed with the test environment's cheap parameters)."""
        with self.app.app_context(), self.database.transaction() as session:
            yield session

    def create_user(self, email: str, *, password: str | None = PASSWORD, staff: bool = False) -> UserRef:
        """A committed user who signs in with ``password`` (default ``PASSWORD``); ``None``: never."""
        with self.transaction() as session:
            user = factories.make_user(session, email, password=password, staff=staff)
            return UserRef(user.id, user.email, password)

    def create_workspace(self, name: str, owner: UserRef, members: tuple[UserRef, ...] = ()) -> WorkspaceRef:
        """A committed workspace owned by ``owner``, with ``members`` as members."""
        from app.accounts.models import User

        with self.transaction() as session:
            users = [session.get(User, u.id) for u in (owner, *members)]
            assert all(users), "create the users with create_user first"
            workspace = factories.make_workspace(session, name, users[0], users[1:])
            return WorkspaceRef(workspace.id, workspace.name, owner)

    def create_owner(
        self, name: str = "Acme Workspace", *, email: str | None = None, password: str = PASSWORD
    ) -> WorkspaceRef:
        """A committed workspace and its owner, who signs in with ``password``."""
        email = email or f"owner@{name.lower().replace(' ', '-')}.test"
        return self.create_workspace(name, self.create_user(email, password=password))

    def sign_in(self, page: Page, email: str, password: str = PASSWORD) -> None:
        """Sign in through the login form, as a person would; returns on the home page."""
        page.goto("/login")
        page.get_by_label("Email").fill(email)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Your workspaces")).to_be_visible()
