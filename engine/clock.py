"""Injected time. Nothing in Carepath reads the wall clock except :class:`WallClock`.

Three clocks share one interface:

- :class:`WallClock`: production; pathway time is real time.
- :class:`CompressedClock`: demos and end-to-end tests; pathway time runs ``factor`` times faster than the wall
  from an anchor, so a 48 h deadline passes in 48 s at factor 3600. Every process derives the same time from the
  same anchor, which is why its configuration is stored (``to_config``/``clock_from_config``).
- :class:`ManualClock`: pure tests and simulation; time moves only when told.

``wall_time(t)`` maps a pathway time to the wall time at which it happens: that is when Prefect must run the
scheduled work for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

__all__ = ["Clock", "CompressedClock", "ManualClock", "WallClock", "clock_from_config", "utc"]


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime (naive values are taken to be UTC, as SQLite returns them)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Clock(Protocol):
    """What every component asks for the time."""

    def now(self) -> datetime:
        """The current pathway time, aware UTC."""
        ...

    def wall_time(self, at: datetime) -> datetime:
        """The wall time at which pathway time ``at`` happens."""
        ...

    def pathway_time(self, wall: datetime) -> datetime:
        """The pathway time at wall time ``wall`` (the inverse of :meth:`wall_time`)."""
        ...

    def to_config(self) -> dict[str, Any]:
        """A JSON form that :func:`clock_from_config` turns back into an equal clock."""
        ...


def _system_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class WallClock:
    """Real time."""

    def now(self) -> datetime:
        return _system_now()

    def wall_time(self, at: datetime) -> datetime:
        return utc(at)

    def pathway_time(self, wall: datetime) -> datetime:
        return utc(wall)

    def to_config(self) -> dict[str, Any]:
        return {"kind": "wall"}


@dataclass(frozen=True)
class CompressedClock:
    """Pathway time = ``origin + (wall - wall_origin) * factor``."""

    origin: datetime
    wall_origin: datetime
    factor: float

    @classmethod
    def starting_now(cls, factor: float, origin: datetime | None = None) -> CompressedClock:
        wall = _system_now()
        return cls(origin=utc(origin or wall), wall_origin=wall, factor=factor)

    def now(self) -> datetime:
        return self.origin + (_system_now() - self.wall_origin) * self.factor

    def wall_time(self, at: datetime) -> datetime:
        return self.wall_origin + (utc(at) - self.origin) / self.factor

    def pathway_time(self, wall: datetime) -> datetime:
        return self.origin + (utc(wall) - self.wall_origin) * self.factor

    def to_config(self) -> dict[str, Any]:
        return {
            "kind": "compressed",
            "origin": self.origin.isoformat(),
            "wall_origin": self.wall_origin.isoformat(),
            "factor": self.factor,
        }


@dataclass
class ManualClock:
    """A clock that moves only when ``advance``/``set`` are called; its wall time is its own time."""

    current: datetime = field(default_factory=lambda: datetime(2026, 1, 5, 9, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, delta: timedelta) -> datetime:
        self.current += delta
        return self.current

    def set(self, at: datetime) -> None:
        self.current = utc(at)

    def wall_time(self, at: datetime) -> datetime:
        return utc(at)

    def pathway_time(self, wall: datetime) -> datetime:
        return utc(wall)

    def to_config(self) -> dict[str, Any]:
        return {"kind": "manual", "current": self.current.isoformat()}


def clock_from_config(config: dict[str, Any] | None) -> Clock:
    """Rebuild a clock stored with ``to_config``; None or unknown means the wall clock."""
    kind = (config or {}).get("kind", "wall")
    if kind == "compressed":
        assert config is not None
        return CompressedClock(
            origin=utc(datetime.fromisoformat(config["origin"])),
            wall_origin=utc(datetime.fromisoformat(config["wall_origin"])),
            factor=float(config["factor"]),
        )
    if kind == "manual":
        assert config is not None
        return ManualClock(current=utc(datetime.fromisoformat(config["current"])))
    return WallClock()
