"""A local Polar: Polar's public API and OAuth2 server, in memory, with fault injection.

Start it with ``python -m polar_emulator`` or, in-process, with :class:`EmulatorServer`.
"""

from polar_emulator.app import create_app
from polar_emulator.config import EmulatorConfig
from polar_emulator.server import EmulatorServer

__all__ = ["EmulatorConfig", "EmulatorServer", "create_app"]
