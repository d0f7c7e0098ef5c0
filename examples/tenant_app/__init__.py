"""ExampleNotes, an example tenant app of Connect Polar: ``python -m examples.tenant_app``.

It reaches the platform with an API key only (``CONNECT_POLAR_API_KEY``, at ``CONNECT_POLAR_URL``)
and imports nothing of it: a program of its own that happens to live in the same repository.
"""

from .app import create_app
from .config import Config

__all__ = ["Config", "create_app"]
