"""Who may see and act on a workspace: members see it, owners act; to anyone else it does not exist."""

from __future__ import annotations

from dataclasses import dataclass

from flask import abort
from flask_login import current_user

from app.accounts import service
from app.accounts.models import Role, Workspace
from app.database import db_session


@dataclass(frozen=True)
class WorkspaceAccess:
    workspace: Workspace
    role: Role

    @property
    def is_owner(self) -> bool:
        return self.role == Role.OWNER


def member_access(workspace_id: str) -> WorkspaceAccess:
    """The signed-in user's access to the workspace, or 404 (unknown id and non-members alike)."""
    membership = service.membership(db_session(), workspace_id, current_user.id)
    if membership is None:
        abort(404)
    return WorkspaceAccess(workspace=membership.workspace, role=membership.role)


def is_owner(workspace_id: str, user_id: str) -> bool:
    membership = service.membership(db_session(), workspace_id, user_id)
    return membership is not None and membership.role == Role.OWNER


def owner_access(workspace_id: str) -> WorkspaceAccess:
    """Like :func:`member_access`, and 403 for members who are not owners."""
    access = member_access(workspace_id)
    if not access.is_owner:
        abort(403, description="Only the workspace's owners can change its Polar connection.")
    return access
