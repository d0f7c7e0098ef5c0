"""``flask users staff EMAIL --grant|--revoke``: audited, and the console follows it."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session

from app.accounts.models import User
from provisioning.audit.models import AuditEvent
from tests.app.conftest import login


def test_granting_and_revoking_staff_is_audited(app: Flask, owner: User, session: Session) -> None:
    runner = app.test_cli_runner()
    client = app.test_client()
    login(client, owner.email)
    assert client.get("/admin/workspaces").status_code == 404

    granted = runner.invoke(args=["users", "staff", owner.email, "--grant", "--reason", "joins support"])
    assert granted.exit_code == 0 and "is now staff" in granted.output
    assert client.get("/admin/workspaces").status_code == 200
    again = runner.invoke(args=["users", "staff", owner.email, "--grant"])
    assert "already" in again.output
    revoked = runner.invoke(args=["users", "staff", owner.email, "--revoke"])
    assert revoked.exit_code == 0
    assert client.get("/admin/workspaces").status_code == 404

    session.expire_all()
    events = list(
        session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action.like("staff.%")).order_by(AuditEvent.created_at)
        )
    )
    assert [e.action for e in events] == ["staff.grant", "staff.revoke"]
    assert events[0].reason == "joins support" and events[0].target_ids == {"user_id": owner.id}
    unknown = runner.invoke(args=["users", "staff", "nobody@example.com", "--grant"])
    assert unknown.exit_code != 0 and "no user" in unknown.output
