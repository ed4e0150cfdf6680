"""System metrics sampled while runs are active: CPU, memory, disk and network rates, GPUs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from loopml.tracking.model import Metric

__all__ = ["SystemSampler", "sample_once"]


class _Rates:
    """Turns cumulative counters into per-second rates between samples."""

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, float]] = {}

    def rate(self, key: str, total: float, now: float) -> float | None:
        previous = self._last.get(key)
        self._last[key] = (total, now)
        if previous is None or now <= previous[1]:
            return None
        return (total - previous[0]) / (now - previous[1])


def _gpu_sample() -> dict[str, float]:
    try:
        import pynvml  # type: ignore[import-not-found]

        pynvml.nvmlInit()
    except Exception:
        return {}
    values: dict[str, float] = {}
    for index in range(pynvml.nvmlDeviceGetCount()):
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        util = pynvml.nvmlDeviceGetUtilizationRates(handle)
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
        values[f"system/gpu_{index}_utilization_percent"] = float(util.gpu)
        values[f"system/gpu_{index}_memory_mb"] = float(memory.used >> 20)
    return values


def sample_once(rates: _Rates | None = None) -> dict[str, float]:
    """One sample of the machine's state (rates need a previous sample in ``rates``)."""
    import psutil

    now = time.monotonic()
    values: dict[str, float] = {
        "system/cpu_percent": float(psutil.cpu_percent(interval=None)),
        "system/memory_mb": float(psutil.virtual_memory().used >> 20),
        "system/memory_percent": float(psutil.virtual_memory().percent),
    }
    if rates is not None:
        disk: Any = psutil.disk_io_counters()
        net: Any = psutil.net_io_counters()
        for key, total in (
            ("system/disk_read_mb_s", disk.read_bytes / 2**20 if disk else None),
            ("system/disk_write_mb_s", disk.write_bytes / 2**20 if disk else None),
            ("system/network_receive_mb_s", net.bytes_recv / 2**20 if net else None),
            ("system/network_transmit_mb_s", net.bytes_sent / 2**20 if net else None),
        ):
            if total is not None:
                rate = rates.rate(key, total, now)
                if rate is not None:
                    values[key] = rate
    values.update(_gpu_sample())
    return values


class SystemSampler:
    """Samples every ``interval`` seconds in a daemon thread and hands points to ``sink``."""

    def __init__(self, sink: Callable[[list[Metric]], None], interval: float = 10.0) -> None:
        self._sink = sink
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="loopml-system", daemon=True)
        self._step = 0

    def start(self) -> None:
        """Begin sampling."""
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling (waits for the thread)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        # Nothing is imported or primed in a run's first moments: a short run has nothing to
        # sample, and a run that logs at once is not slowed by importing psutil beside it.
        # The first point is still taken ``interval`` after the start.
        settle = min(self._interval / 2, 0.5)
        if self._stop.wait(settle):
            return
        import psutil

        rates = _Rates()
        psutil.cpu_percent(interval=None)  # the first call only primes the counter
        sample_once(rates)
        wait = self._interval - settle
        while not self._stop.wait(wait):
            wait = self._interval
            stamp = time.time_ns() // 1_000_000
            points = [Metric(k, v, self._step, stamp) for k, v in sample_once(rates).items()]
            self._step += 1
            try:
                self._sink(points)
            except Exception:
                return
