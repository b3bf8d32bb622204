"""How long each configuration is measured. Its own module so the harness and every target (host,
benchmark_model, Android) share it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RunPlan"]


@dataclass(frozen=True)
class RunPlan:
    """How long each configuration is measured: `warmup` runs after the first inference, then timed runs until
    both `runs` and `min_seconds` are reached, but never past `max_seconds` of timed runs, so one configuration
    stalled by a busy machine cannot hold up the whole run (its row then says how many runs it got)."""

    warmup: int = 5
    runs: int = 30
    min_seconds: float = 0.0
    max_seconds: float = 30.0

    def wants_more(self, count: int, elapsed_s: float) -> bool:
        return (count < self.runs or elapsed_s < self.min_seconds) and elapsed_s < self.max_seconds
