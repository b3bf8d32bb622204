"""Peak memory of loading and first running a model: the growth of this process's resident set (RSS).

What is measured: peak RSS during the block minus RSS just before it. The block is a runtime's load, first
inference and warm-up, where weights, arenas and workspaces get allocated; timed runs allocate nothing new.
Memory freed earlier in the process (an export, a previous model) would be reused without showing up in RSS,
so before the baseline the garbage collector runs and glibc is asked to hand free heap pages back to the OS
(`malloc_trim(0)`); the harness imports each runtime's library before measuring, so the first configuration
of a runtime does not also pay for loading the library.

How: on Linux the kernel's own high-water mark (VmHWM in /proc/self/status) is reset before the block by
writing 5 to /proc/self/clear_refs, so even a spike lasting microseconds is caught. Elsewhere a psutil thread
samples RSS every millisecond, which can miss spikes shorter than that.
"""

from __future__ import annotations

import ctypes
import gc
import sys
import threading
from pathlib import Path

from ..errors import require

__all__ = ["PeakMemory"]

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kb(field: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"{field} not in {_STATUS}")


def _release_free_memory() -> None:
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to trim
            pass


def _reset_high_water_mark() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
        _status_kb("VmHWM")
        return True
    except OSError:
        return False


class PeakMemory:
    """`with PeakMemory() as m: ...` then `m.delta_mb` (peak RSS growth) and `m.method` (how it was measured)."""

    def __init__(self, interval_s: float = 0.001):
        self.interval_s = interval_s
        self.delta_mb: float | None = None
        self.method = ""

    def __enter__(self) -> PeakMemory:
        _release_free_memory()
        if _reset_high_water_mark():
            self.method = "RSS high-water mark delta (Linux VmHWM), load + first run + warm-up"
            self._baseline = _status_kb("VmRSS") * 1024
            self._thread = None
        else:
            psutil = require("psutil", "memory measurement without /proc", "bench")
            self.method = "RSS sampled every 1 ms (psutil) delta, load + first run + warm-up"
            self._process = psutil.Process()
            self._baseline = self._peak = self._process.memory_info().rss
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._peak = max(self._peak, self._process.memory_info().rss)

    def __exit__(self, *exc) -> None:
        if self._thread is None:
            peak = _status_kb("VmHWM") * 1024
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self._peak, self._process.memory_info().rss)
        self.delta_mb = max(peak - self._baseline, 0) / 2**20
