"""The Polar page's forms: each one a POST with a CSRF token."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, RadioField
from wtforms.validators import DataRequired, Optional


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
