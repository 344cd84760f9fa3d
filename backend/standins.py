"""Stand-in segmenters: cheap, deterministic objects with the ``SegmenterLike`` interface.

They let tests, benchmarks and the plugin exercise the whole georeferenced pipeline without
a neural network: geometry is checked with :class:`RedSegmenter`, nodata handling with
:class:`ConstantSegmenter`, and the pipeline's own cost with :class:`SleepSegmenter`.
No torch.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np

__all__ = ["BusySegmenter", "ConstantSegmenter", "RedSegmenter", "SleepSegmenter"]


def _check_image(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    return image


class _StandIn:
    """Shared optional attributes of ``backend.types.SegmenterLike``."""

    name = "standin"
    checkpoint_sha256 = ""

    def __init__(self, *, image_size: int = 1024, gsd_m: float | None = None) -> None:
        self.image_size = image_size
        self.gsd_m = gsd_m
        self.calls = 0  # number of images predicted, for tests

    def predict(self, image: np.ndarray, text: str) -> np.ndarray:
        """``(H, W, 3)`` uint8 -> ``(H, W)`` float32 in [0, 1]."""
        raise NotImplementedError

    def predict_batch(self, images: np.ndarray, text: str) -> np.ndarray:
        """``(N, H, W, 3)`` uint8 -> ``(N, H, W)`` float32; same values as one by one."""
        return np.stack([self.predict(image, text) for image in images])


class RedSegmenter(_StandIn):
    """Probability 1.0 on "red" pixels (R > 150, G < 100, B < 100), else 0.0; ignores the text."""

    name = "standin-red"

    def predict(self, image: np.ndarray, text: str) -> np.ndarray:
        """See :class:`RedSegmenter`."""
        image = _check_image(image)
        self.calls += 1
        red = (image[..., 0] > 150) & (image[..., 1] < 100) & (image[..., 2] < 100)
        return red.astype(np.float32)


class ClickRedSegmenter(RedSegmenter):
    """:class:`RedSegmenter` that takes clicks.

    A positive click adds a square of side ``2 * radius_px + 1`` around it, a negative one
    clears such a square (in click order).
    """

    name = "standin-click-red"
    radius_px = 6

    def __init__(self, *, image_size: int = 1024, gsd_m: float | None = None) -> None:
        super().__init__(image_size=image_size, gsd_m=gsd_m)
        self.click_calls: list[list[tuple[float, float, bool]]] = []

    def predict_clicks(
        self, image: np.ndarray, text: str, clicks: list[tuple[float, float, bool]]
    ) -> np.ndarray:
        """``(column, row, positive)`` clicks in the image's pixels; see the class."""
        prob = self.predict(image, text)
        self.click_calls.append(list(clicks))
        h, w = prob.shape
        r = self.radius_px
        for col, row, positive in clicks:
            c, rr = int(col), int(row)
            prob[max(rr - r, 0) : min(rr + r + 1, h), max(c - r, 0) : min(c + r + 1, w)] = (
                1.0 if positive else 0.0
            )
        return prob


class ConstantSegmenter(_StandIn):
    """The same probability ``value`` everywhere."""

    name = "standin-constant"

    def __init__(
        self, value: float = 1.0, *, image_size: int = 1024, gsd_m: float | None = None
    ) -> None:
        super().__init__(image_size=image_size, gsd_m=gsd_m)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"value must be in [0, 1], got {value}")
        self.value = float(value)

    def predict(self, image: np.ndarray, text: str) -> np.ndarray:
        """See :class:`ConstantSegmenter`."""
        image = _check_image(image)
        self.calls += 1
        return np.full(image.shape[:2], self.value, dtype=np.float32)


class SleepSegmenter(_StandIn):
    """A segmenter of known, fixed cost: sleeps, does a fixed amount of numpy work, returns red.

    Args:
        seconds: Sleep per image of ``image_size`` x ``image_size`` (scaled by area for other
            sizes, so cost per pixel is constant).
        work_px: Pixels of float32 arithmetic done per call (a fixed, model-like CPU load).
        image_size: Preferred tile size in pixels.
        gsd_m: Working ground resolution in m/px; None = native.
    """

    name = "standin-sleep"

    def __init__(
        self,
        seconds: float = 0.2,
        *,
        work_px: int = 256 * 256,
        image_size: int = 1024,
        gsd_m: float | None = None,
    ) -> None:
        super().__init__(image_size=image_size, gsd_m=gsd_m)
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        self.seconds = float(seconds)
        self._work = np.linspace(0.0, 1.0, max(int(work_px), 1), dtype=np.float32)
        self._red = RedSegmenter(image_size=image_size, gsd_m=gsd_m)

    def predict(self, image: np.ndarray, text: str) -> np.ndarray:
        """Red pixels (like :class:`RedSegmenter`) after the fixed sleep and work."""
        image = _check_image(image)
        self.calls += 1
        h, w = image.shape[:2]
        time.sleep(self.seconds * (h * w) / (self.image_size * self.image_size))
        acc = self._work
        for _ in range(4):  # fixed numpy work, independent of the image
            acc = np.sqrt(acc * acc + 1.0) - 1.0
        return self._red.predict(image, text)


class BusySegmenter(_StandIn):
    """Like :class:`SleepSegmenter`, but the time is spent computing on every core.

    A model on the CPU keeps all cores busy while it predicts; a sleeping stand-in leaves them
    free, which flatters work done meanwhile (reading the next tile ahead). This one runs
    ``threads`` numpy loops (numpy releases the GIL for them) for ``seconds`` per
    ``image_size``² image, then returns the red pixels. ``device`` is ``"cpu"``, as for a
    model on the CPU.

    Args:
        seconds: Busy time per image of ``image_size`` x ``image_size`` (scaled by area).
        threads: Cores kept busy (default: all of them).
        image_size: Preferred tile size in pixels.
        gsd_m: Working ground resolution in m/px; None = native.
    """

    name = "standin-busy"
    device = "cpu"

    def __init__(
        self,
        seconds: float = 0.2,
        *,
        threads: int | None = None,
        image_size: int = 1024,
        gsd_m: float | None = None,
    ) -> None:
        super().__init__(image_size=image_size, gsd_m=gsd_m)
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        self.seconds = float(seconds)
        self.threads = max(1, threads or os.cpu_count() or 1)
        self._red = RedSegmenter(image_size=image_size, gsd_m=gsd_m)

    def predict(self, image: np.ndarray, text: str) -> np.ndarray:
        """Red pixels after ``seconds`` (scaled by area) of work on ``threads`` cores."""
        image = _check_image(image)
        self.calls += 1
        h, w = image.shape[:2]
        deadline = time.perf_counter() + self.seconds * (h * w) / (self.image_size**2)
        workers = [
            threading.Thread(target=_spin, args=(deadline,)) for _ in range(self.threads - 1)
        ]
        for worker in workers:
            worker.start()
        _spin(deadline)
        for worker in workers:
            worker.join()
        return self._red.predict(image, text)


def _spin(deadline: float) -> None:
    """Arithmetic on 4 MiB arrays (GIL released inside numpy) until ``deadline``."""
    a = np.linspace(0.0, 1.0, 1 << 20, dtype=np.float32)
    b = np.empty_like(a)
    while time.perf_counter() < deadline:
        for _ in range(2):
            np.multiply(a, a, out=b)
            np.sqrt(b, out=b)
