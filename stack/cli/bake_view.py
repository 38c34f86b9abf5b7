"""What `mlstack deploy` shows while a rollout bakes: each stage, its requests, its verdict.

On a terminal, one live panel (rich) redrawn at every health check; in a log (CI, a pipe),
a line when a stage starts and one when its bake ends, so the log stays short.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

from rich.console import Console
from rich.live import Live
from rich.table import Table

if TYPE_CHECKING:
    from stack.rollout import BakeTick


def describe(tick: BakeTick) -> Table:
    """The tick as a table: one row per version (requests, errors, p99), with the verdict."""
    table = Table(
        title=f"{tick.endpoint}: {tick.stage}  {tick.elapsed_s:.0f}/{tick.bake_s:.0f} s",
        title_justify="left",
        caption=verdict(tick),
        caption_justify="left",
    )
    for column in ("version", "requests", "errors", "p99 ms"):
        table.add_column(column, justify="left" if column == "version" else "right")
    for ref, stats in sorted(tick.report.versions.items()):
        p99 = f"{stats.p99_latency_ms:.1f}" if stats.p99_latency_ms is not None else "-"
        table.add_row(ref, str(stats.requests), f"{stats.error_rate:.1%}", p99)
    return table


def verdict(tick: BakeTick) -> str:
    if tick.reasons:
        return "breach: " + "; ".join(tick.reasons)
    if tick.holds:
        return "holding, cannot judge yet: " + "; ".join(tick.holds)
    return "held its SLOs" if tick.final else "baking: no breach so far"


def summary(tick: BakeTick) -> str:
    """One line for a log."""
    counts = ", ".join(
        f"{ref} {stats.requests} req {stats.error_rate:.1%} errors"
        for ref, stats in sorted(tick.report.versions.items())
    )
    return f"{tick.endpoint}: {tick.stage} [{tick.elapsed_s:.0f}/{tick.bake_s:.0f} s] " + (
        f"{counts}: {verdict(tick)}" if counts else verdict(tick)
    )


class BakeView:
    """A `progress` callback for RolloutController, used as a context manager."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._live: Live | None = None
        self._stage: str | None = None
        self._holding: str | None = None  # the stage whose hold a log was told of

    def __enter__(self) -> BakeView:
        return self

    def __call__(self, tick: BakeTick) -> None:
        if self.console.is_terminal:
            if self._live is None or tick.stage != self._stage:
                self._stop()
                self._live = Live(describe(tick), console=self.console, auto_refresh=False)
                self._live.start()
            self._live.update(describe(tick), refresh=True)
        elif tick.stage != self._stage:
            self.console.print(f"{tick.endpoint}: {tick.stage} (bake {tick.bake_s:.0f} s)")
        if not self.console.is_terminal and (tick.reasons or (tick.final and self._news(tick))):
            self.console.print(summary(tick), highlight=False)
        self._stage = tick.stage

    def _news(self, tick: BakeTick) -> bool:
        """Whether a log needs this final tick: the verdict, or the first of a stage's holds
        (a hold checks again every few seconds; the deploy's result says how it ended)."""
        if not tick.holds:
            return True
        first = self._holding != tick.stage
        self._holding = tick.stage
        return first

    def _stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._stop()
