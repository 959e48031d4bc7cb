"""Progress of a long CLI job (bulk replay, bulk requeue, backfill): how far, how fast.

A bulk command can take minutes over thousands of pushes; without a sign of life an
operator cannot tell a slow run from a hung one. On a terminal, :class:`Progress` draws
a bar on stderr, redrawn in place at most ten times a second; anywhere else (a log, a
pipe, CI) it writes a plain line at most every ``interval`` seconds. Either way it ends
with one line saying what was done, how many failed and how long it took. What the
command itself prints (stdout) stays as it is and passes above the bar
(:meth:`Progress.say`), so scripts reading stdout see no difference; only a line per
item is left out when the bar counts the items on the same terminal (:meth:`Progress.item`).

No dependency: a bar is a dozen characters and a carriage return.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

#: Seconds between plain progress lines off a terminal.
PLAIN_INTERVAL = 5.0
#: Seconds between redraws of the bar.
BAR_INTERVAL = 0.1
BAR_WIDTH = 24


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds + 0.5), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Progress:
    """Count work done; show it on ``stream`` (stderr) as a bar on a terminal, plain lines
    otherwise. ``total`` None: the amount is not known up front (no percentage, no ETA).

    ``enabled=False`` (a single item, nothing to show) draws nothing and writes no lines,
    but :meth:`say` still prints. Use it as a context manager: leaving it writes the
    final line, also when the job failed half-way.
    """

    def __init__(
        self,
        label: str,
        total: int | None,
        *,
        unit: str = "",
        enabled: bool = True,
        stream: TextIO | None = None,
        out: TextIO | None = None,
        tty: bool | None = None,
        interval: float = PLAIN_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.out = out if out is not None else sys.stdout
        self.bar = enabled and (self.stream.isatty() if tty is None else tty)
        self.interval = BAR_INTERVAL if self.bar else interval
        self.clock = clock
        self.done = 0
        self.failed = 0
        self.started = clock()
        self._shown_at = self.started
        self._drawn = False
        self._closed = False

    def __enter__(self) -> Progress:
        if self.bar:
            self._draw()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(interrupted=kind is not None)

    def advance(self, count: int = 1, *, failed: bool = False) -> None:
        """``count`` more items done (``failed``: done, but they did not work)."""
        self.done += count
        if failed:
            self.failed += count
        if not self.enabled:
            return
        now = self.clock()
        if now - self._shown_at < self.interval:
            return
        self._shown_at = now
        if self.bar:
            self._draw()
        else:
            self.stream.write(self._status(now) + "\n")
            self.stream.flush()

    def say(self, text: str) -> None:
        """Print a line of the command's own output (stdout), above the bar if one is drawn."""
        if self._drawn:
            self._clear()
        print(text, file=self.out, flush=True)
        if self.bar and not self._closed:
            self._draw()

    def item(self, text: str) -> None:
        """A line about one item (``queued <id>``): printed as :meth:`say` does, except when
        the bar, on the same terminal, already counts the items (thousands of lines would
        scroll away what matters, the failures)."""
        if self.bar and self.out.isatty():
            return
        self.say(text)

    def close(self, *, interrupted: bool = False) -> None:
        """The final line: what was done, how many failed, how long it took."""
        if self._closed:
            return
        self._closed = True
        if not self.enabled:
            return
        if self._drawn:
            self._clear()
        elapsed = self.clock() - self.started
        of = f" of {self.total:,}" if self.total is not None else ""
        unit = f" {self.unit}" if self.unit else ""
        failed = f", {self.failed:,} failed" if self.failed else ""
        stopped = " (stopped)" if interrupted else ""
        line = f"{self.label}: {self.done:,}{of}{unit} in {_duration(elapsed)}{failed}{stopped}"
        self.stream.write(line + "\n")
        self.stream.flush()

    def _status(self, now: float) -> str:
        """``replay: 500 of 1,000 pushes (50 %), 120/s, about 4.2 s left``."""
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        unit = f" {self.unit}" if self.unit else ""
        parts = [f"{self.label}: {self.done:,}"]
        if self.total:
            percent = 100 * self.done // self.total
            parts[0] += f" of {self.total:,}{unit} ({percent} %)"
        else:
            parts[0] += unit
        parts.append(f"{rate:,.0f}/s" if rate >= 1 else f"{rate:.2f}/s")
        if self.failed:
            parts.append(f"{self.failed:,} failed")
        if self.total and rate > 0 and self.done < self.total:
            parts.append(f"about {_duration((self.total - self.done) / rate)} left")
        return ", ".join(parts)

    def _draw(self) -> None:
        if self.total:
            filled = min(BAR_WIDTH, BAR_WIDTH * self.done // self.total)
            bar = "[" + "#" * filled + "." * (BAR_WIDTH - filled) + "] "
        else:
            bar = ""
        self.stream.write("\r" + bar + self._status(self.clock()) + "\x1b[K")
        self.stream.flush()
        self._drawn = True

    def _clear(self) -> None:
        self.stream.write("\r\x1b[K")
        self.stream.flush()
        self._drawn = False
