"""pytest fixtures for any test suite that runs against the emulator.

Registered through the ``pytest11`` entry point, so installing the package makes them available:
``emulator_server`` (one emulator per test process), ``emulator`` (that emulator, reset to its
seed before the test) and ``control`` (an HTTP client on it).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from polar_emulator.config import EmulatorConfig
from polar_emulator.server import EmulatorServer


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorServer]:
    """One emulator per test process; webhook retries run 1000x faster than Polar's."""
    server = EmulatorServer(EmulatorConfig(webhook_retry_scale=0.001, webhook_timeout=2.0)).start()
    yield server
    server.stop()


@pytest.fixture
def emulator(emulator_server: EmulatorServer) -> Iterator[EmulatorServer]:
    """The emulator, reset to its seed before the test."""
    httpx.post(f"{emulator_server.url}/_emulator/reset").raise_for_status()
    yield emulator_server


@pytest.fixture
def control(emulator: EmulatorServer) -> Iterator[httpx.Client]:
    """An HTTP client on the emulator's control API and root."""
    with httpx.Client(base_url=emulator.url, timeout=10) as client:
        yield client
