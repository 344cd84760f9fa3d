"""Progress of a transfer: bytes done, rate and time left, for the CLI bar and the QGIS task."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Progress", "ProgressState", "format_bytes"]


@dataclass(frozen=True)
class ProgressState:
    """A snapshot of a transfer.

    Attributes:
        stage: ``"download"``, ``"verify"`` or ``"import"``.
        done: Bytes done in this stage.
        total: Bytes of this stage (0 when unknown).
        rate: Bytes per second over the last few seconds (0 at the start).
        file: The file being handled (a name in the release folder, or the output).
    """

    stage: str
    done: int
    total: int
    rate: float
    file: str = ""

    @property
    def percent(self) -> float:
        """0..100 (0 when the total is unknown)."""
        return 100.0 * self.done / self.total if self.total else 0.0

    @property
    def seconds_left(self) -> float | None:
        """Time left at the current rate, or None when it cannot be told yet."""
        if self.rate <= 0 or not self.total:
            return None
        return max(0.0, (self.total - self.done) / self.rate)

    def describe(self) -> str:
        """``"download 1.20 GiB of 3.47 GiB, 12.3 MiB/s, 3 min 10 s left (model.safetensors)"``."""
        text = f"{self.stage} {format_bytes(self.done)} of {format_bytes(self.total)}"
        if self.rate > 0:
            text += f", {format_bytes(int(self.rate))}/s"
        left = self.seconds_left
        if left is not None:
            minutes, seconds = divmod(int(left), 60)
            text += f", {minutes} min {seconds} s left" if minutes else f", {seconds} s left"
        return text + (f" ({self.file})" if self.file else "")


class Progress:
    """Counts bytes of one stage and reports :class:`ProgressState` to a callback.

    Args:
        callback: Receives every state (at most about 10 per second, plus the last one).
        stage: The stage name.
        total: Bytes of the stage.
        clock: Seconds (for tests).
    """

    def __init__(
        self,
        callback: Callable[[ProgressState], None] | None,
        stage: str,
        total: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.callback = callback
        self.stage = stage
        self.total = total
        self.done = 0
        self.file = ""
        self._clock = clock
        self._window: list[tuple[float, int]] = [(clock(), 0)]
        self._last_report = -1.0

    def set(self, done: int, file: str | None = None) -> None:
        """Set the bytes done (absolute) and report."""
        self.done = done
        if file is not None:
            self.file = file
        now = self._clock()
        self._window.append((now, done))
        while len(self._window) > 2 and now - self._window[0][0] > 5.0:
            self._window.pop(0)
        if self.callback is not None and (now - self._last_report >= 0.1 or done >= self.total):
            self._last_report = now
            self.callback(self.state())

    def add(self, n: int) -> None:
        """Add ``n`` bytes and report."""
        self.set(self.done + n)

    def state(self) -> ProgressState:
        """The current snapshot."""
        (t0, d0), (t1, d1) = self._window[0], self._window[-1]
        rate = (d1 - d0) / (t1 - t0) if t1 > t0 else 0.0
        return ProgressState(self.stage, self.done, self.total, max(rate, 0.0), self.file)


def format_bytes(n: int) -> str:
    """``"3.47 GiB"`` style size."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    return f"{value:.2f} GiB"  # pragma: no cover
