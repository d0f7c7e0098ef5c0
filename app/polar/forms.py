"""The Polar page's forms: each one a POST with a CSRF token."""

from __future__ import annotations

import uuid

from flask_wtf import FlaskForm
from wtforms import HiddenField, RadioField, StringField
from wtforms.validators import AnyOf, DataRequired, Length, Optional

from provisioning.api_keys.models import KeyMode
from provisioning.api_keys.service import NAME_MAX

# How long a new API key lasts ("": until revoked).
EXPIRY_CHOICES = [
    ("", "Never"),
    ("7", "In 7 days"),
    ("30", "In 30 days"),
    ("90", "In 90 days"),
    ("365", "In a year"),
]


class ConnectForm(FlaskForm):
    """Connect Polar: the Polar environment (test mode: sandbox, live mode: production)."""

    environment = HiddenField(validators=[Optional()])


class DisconnectForm(FlaskForm):
    """Disconnect one Polar environment."""

    environment = HiddenField(validators=[Optional()])


class SwitchForm(FlaskForm):
    """Confirm or cancel a reconnect that would switch Polar account or organization; the button
    pressed (``decision``: ``switch`` or ``keep``) says which."""

    environment = HiddenField(validators=[Optional()])


class OrganizationForm(FlaskForm):
    organization_id = RadioField("Organization", validators=[DataRequired()], choices=[])


class ApiKeyForm(FlaskForm):
    """A new API key for the tenant API. ``environment`` is the billing page's tab to come back to;
    ``mode`` takes any mode here, and the service refuses one the workspace has no connection in
    (the page offers only those it has)."""

    environment = HiddenField(validators=[Optional()])
    # This form's own: sent twice (a reload of the answer page, a double click), it makes one key.
    nonce = HiddenField(default=lambda: uuid.uuid4().hex, validators=[Optional(), Length(max=64)])
    name = StringField(
        "Name",
        validators=[
            DataRequired(message="Give the key a name, such as where it is used."),
            Length(max=NAME_MAX, message=f"The name is too long: at most {NAME_MAX} characters."),
        ],
    )
    # Both rendered as <select> by the page (the modes it offers: those the workspace has).
    mode = StringField(
        "Mode", validators=[AnyOf([m.value for m in KeyMode], message="Choose test or live mode.")]
    )
    expires = StringField(
        "Expires",
        default="",
        validators=[AnyOf([value for value, _ in EXPIRY_CHOICES], message="Choose when the key expires.")],
    )


class RevokeKeyForm(FlaskForm):
    """Revoke one API key: the CSRF token, nothing else."""
