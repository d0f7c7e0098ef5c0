"""Only staff see the console. To anyone else signed in every console URL is a 404 (its existence
is not revealed); signed-out visitors are sent to sign in, as everywhere."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import abort
from flask_login import current_user, login_required

F = TypeVar("F", bound=Callable[..., Any])


def staff_required(view: F) -> F:
    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not getattr(current_user, "staff", False):
            abort(404)
        return view(*args, **kwargs)

    return cast(F, login_required(wrapped))
