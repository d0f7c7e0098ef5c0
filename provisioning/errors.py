"""The one root of every error the domain raises on purpose.

``except ConnectPolarError`` catches every failure the platform itself reports (bad settings, a
refused callback, Polar refusing a call, an unreadable secret, a malformed plan file); anything
else is a bug. Messages are for people and never contain a secret.
"""

from __future__ import annotations


class ConnectPolarError(RuntimeError):
    """Base class of the domain's errors."""
