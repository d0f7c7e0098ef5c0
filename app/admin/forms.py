"""The console's forms: every action is a POST with a CSRF token and a reason."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

REASON = "Why? (kept in the audit trail)"


class ActionForm(FlaskForm):
    reason = TextAreaField(
        REASON,
        validators=[DataRequired("Say why: the reason goes into the audit trail."), Length(max=1000)],
    )
    environment = HiddenField(validators=[Optional()])


class RetryForm(ActionForm):
    run_id = HiddenField(validators=[DataRequired()])


class RevokeKeyForm(ActionForm):
    """Revoke one of the workspace's API keys (a leaked key, say), with the reason."""

    key_id = HiddenField(validators=[DataRequired()])


class RetryEventsForm(ActionForm):
    """Process a connection's failed webhook events again (after a fix), with the reason."""

    integration_id = HiddenField(validators=[DataRequired()])


class ConfirmedActionForm(ActionForm):
    confirm = BooleanField(
        "I confirm", validators=[DataRequired("Tick the box to confirm: this cannot be undone from here.")]
    )


class BulkForm(ConfirmedActionForm):
    """Re-provision the selected connections, or all that match the list's filter."""

    scope = HiddenField(validators=[DataRequired()])  # "selected" | "matching"
    q = HiddenField(validators=[Optional()])
    status = HiddenField(validators=[Optional()])
    behind = HiddenField(validators=[Optional()])
    problem = HiddenField(validators=[Optional()])


class RequeueForm(ActionForm):
    job_id = HiddenField(validators=[DataRequired()])
