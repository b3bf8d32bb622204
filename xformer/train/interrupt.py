"""Ctrl-C during training stops at the next step boundary, never inside library code.

Raised wherever it lands, a KeyboardInterrupt can hit a finaliser (a data loader shutting its workers down at the
end of an epoch), where Python prints "Exception ignored" and training carries on. The handler here only records
the signal; the loop calls `check()` between steps and after each epoch's files are written, so the run always
stops with a consistent resume.pt.
"""

from __future__ import annotations

import contextlib
import signal
import threading

__all__ = ["check", "deferred_interrupt"]

_pending = threading.Event()


def _record(signum, frame) -> None:
    _pending.set()


@contextlib.contextmanager
def deferred_interrupt():
    """Record SIGINT instead of raising it (main thread only: elsewhere Python delivers no signals anyway)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _pending.clear()
    previous = signal.signal(signal.SIGINT, _record)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _pending.clear()


def check() -> None:
    """Raise the KeyboardInterrupt a Ctrl-C asked for."""
    if _pending.is_set():
        raise KeyboardInterrupt
