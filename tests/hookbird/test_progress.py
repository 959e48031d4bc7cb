"""Progress: a bar redrawn in place on a terminal, plain lines at intervals elsewhere."""

from __future__ import annotations

import io

import pytest

from hookbird.progress import Progress


class Clock:
    """Seconds that pass only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_plain_lines_at_intervals_then_a_summary() -> None:
    """A line at most every `interval` seconds with count, percentage, rate and time left."""
    clock, err, out = Clock(), io.StringIO(), io.StringIO()
    with Progress("replay", 100, unit="pushes", stream=err, out=out, interval=5, clock=clock) as p:
        for i in range(100):
            clock.now += 0.1
            p.advance(failed=i == 3)
    lines = err.getvalue().splitlines()
    assert lines[0] == "replay: 50 of 100 pushes (50 %), 10/s, 1 failed, about 5.0 s left"
    assert lines[1] == "replay: 100 of 100 pushes (100 %), 10/s, 1 failed"
    assert lines[2] == "replay: 100 of 100 pushes in 10.0 s, 1 failed"
    assert len(lines) == 3
    assert "\r" not in err.getvalue()
    assert out.getvalue() == ""


def test_on_a_terminal_a_bar_redrawn_in_place_and_lines_pass_above_it() -> None:
    """The bar is redrawn with a carriage return; a line said meanwhile clears it first."""
    clock, term = Clock(), Terminal()
    with Progress("requeue", 4, unit="pushes", stream=term, out=term, clock=clock) as p:
        clock.now += 1
        p.advance()
        p.say("skipped 42: not in the dead letter")
        p.item("requeued 43")  # the bar counts items on this terminal
        clock.now += 1
        p.advance(3)
    text = term.getvalue()
    assert text.startswith("\r[........................] requeue: 0 of 4 pushes (0 %)")
    assert (
        "\r[######..................] requeue: 1 of 4 pushes (25 %), 1/s, about 3.0 s left" in text
    )
    assert "\r\x1b[Kskipped 42: not in the dead letter\n\r[######" in text
    assert "requeued 43" not in text
    assert text.endswith("\r\x1b[Krequeue: 4 of 4 pushes in 2.0 s\n")


def test_items_are_printed_when_stdout_is_not_the_terminal() -> None:
    """Output redirected to a file keeps every per-item line, while the bar shows on stderr."""
    out = io.StringIO()
    with Progress("requeue", 2, stream=Terminal(), out=out, clock=Clock()) as p:
        p.item("requeued 1")
        p.item("requeued 2")
    assert out.getvalue() == "requeued 1\nrequeued 2\n"


def test_unknown_total_counts_without_percentage() -> None:
    """A backfill that pages through Moneybird does not know its total: count and rate."""
    clock, err = Clock(), io.StringIO()
    with Progress("backfill", None, unit="records", stream=err, interval=1, clock=clock) as p:
        clock.now += 2
        p.advance(500)
    assert err.getvalue().splitlines() == [
        "backfill: 500 records, 250/s",
        "backfill: 500 records in 2.0 s",
    ]


def test_disabled_shows_nothing_but_says_what_the_command_prints() -> None:
    """One item: no bar, no summary; the command's own lines still print."""
    err, out = Terminal(), io.StringIO()
    with Progress("replay", 1, enabled=False, stream=err, out=out) as p:
        p.item("queued 1")
        p.advance()
    assert err.getvalue() == ""
    assert out.getvalue() == "queued 1\n"


def test_a_job_that_fails_half_way_still_ends_the_bar_with_what_was_done() -> None:
    """Ctrl-C mid-run: the bar gives way to a line saying how far it got."""
    clock, term = Clock(), Terminal()

    def interrupted_run() -> None:
        with Progress("replay", 10, stream=term, clock=clock) as p:
            p.advance(4)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted_run()
    assert term.getvalue().endswith("\r\x1b[Kreplay: 4 of 10 in 0.0 s (stopped)\n")


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.04, "0.0 s"), (59.9, "59.9 s"), (61, "1 min 01 s"), (7260, "2 h 01 min")],
)
def test_durations_read_naturally(seconds: float, shown: str) -> None:
    clock, err = Clock(), io.StringIO()
    with Progress("x", 1, stream=err, clock=clock):
        clock.now += seconds
    assert err.getvalue() == f"x: 0 of 1 in {shown}\n"
