"""Sign-in and sign-up forms (Flask-WTF: every form carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Length, Regexp

# A plain shape check; the email-validator package is not a dependency.
EMAIL_SHAPE = Regexp(r"^[^@\s]+@[^@\s]+\.[^@\s]+$", message="Enter an email address.")


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired()])


class SignupForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), EMAIL_SHAPE, Length(max=320)])
    password = PasswordField("Password", validators=[DataRequired(), Length(min=8, max=200)])
    workspace = StringField("Workspace name", validators=[DataRequired(), Length(max=120)])


class WorkspaceForm(FlaskForm):
    """A new workspace, owned by the signed-in user."""

    name = StringField(
        "Workspace name",
        validators=[DataRequired(message="Enter a name for the workspace."), Length(max=120)],
    )


class LogoutForm(FlaskForm):
    """An empty form: sign-out is a POST with a CSRF token."""
