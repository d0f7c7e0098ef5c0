"""The emulator's clock: real time plus an offset that tests move forward."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


class Clock:
    def __init__(self) -> None:
        self.offset = 0.0

    def time(self) -> float:
        """Seconds since the epoch, as Polar sees them."""
        return time.time() + self.offset

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset)

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def reset(self) -> None:
        self.offset = 0.0


def isoformat(dt: datetime) -> str:
    """Polar's timestamp format: ISO 8601 with microseconds and a UTC offset."""
    return dt.astimezone(UTC).isoformat()
