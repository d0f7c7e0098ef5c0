"""The Polar page's forms: each one a POST with a CSRF token."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import RadioField
from wtforms.validators import DataRequired


class ConnectForm(FlaskForm):
    """Connect Polar: no fields but the CSRF token."""


class DisconnectForm(FlaskForm):
    """Disconnect: no fields but the CSRF token."""


class OrganizationForm(FlaskForm):
    organization_id = RadioField("Organization", validators=[DataRequired()], choices=[])
