"""dev's supervisor, on real short-lived processes: report, restart with back-off, give up."""

from __future__ import annotations

import subprocess
import sys
import threading

from hookbird import children
from tests.commands.processes import wait_for


def dies(code: int, output: children.Output) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-c", f"print('about to exit {code}'); raise SystemExit({code})"]
    return output.follow(subprocess.Popen(command, stdout=subprocess.PIPE))


def supervise(child: children.Child) -> tuple[children.Supervisor, list[str], threading.Event]:
    said: list[str] = []
    gave_up = threading.Event()
    supervisor = children.Supervisor(
        [child], on_give_up=gave_up.set, say=said.append, poll_every=0.01, backoff=(0.01, 0.02)
    )
    child.launch()
    supervisor.start()
    return supervisor, said, gave_up


def test_a_child_that_keeps_dying_is_restarted_then_given_up_on() -> None:
    """Each death is reported with its exit code and last output; after MAX_RESTARTS quick
    deaths in a row the supervisor stops restarting and says why."""
    output = children.Output()
    child = children.Child("worker", start=lambda: dies(3, output), output=output.last)
    supervisor, said, gave_up = supervise(child)
    assert gave_up.wait(30)
    supervisor.close()
    deaths = [line for line in said if "died after" in line]
    assert len(deaths) == children.MAX_RESTARTS + 1
    assert all("exit code 3" in line for line in deaths)
    assert "    | about to exit 3" in deaths[-1]
    assert sum("runs again" in line for line in said) == children.MAX_RESTARTS
    assert supervisor.failure is not None
    assert f"died {children.MAX_RESTARTS + 1} times in a row" in supervisor.failure


def test_a_death_a_restart_cannot_cure_gives_up_at_once() -> None:
    """When ``fatal`` names a reason, the child is not restarted and the reason is kept."""
    output = children.Output()
    child = children.Child(
        "worker", start=lambda: dies(1, output), output=output.last, fatal=lambda: "broken handler"
    )
    supervisor, said, gave_up = supervise(child)
    assert gave_up.wait(30)
    supervisor.close()
    assert supervisor.failure == "the worker cannot run: broken handler"
    assert not any("restarting" in line for line in said)


def test_a_closed_supervisor_leaves_children_alone() -> None:
    """After close() (dev stopping its children itself) a death is neither reported nor
    restarted."""
    child = children.Child(
        "worker",
        start=lambda: subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]),
        output=lambda: "",
    )
    supervisor, said, gave_up = supervise(child)
    supervisor.close()
    assert child.process is not None
    children.stop(child.process)
    wait_for(lambda: child.process is not None and child.process.poll() is not None)
    assert not gave_up.wait(0.3)
    assert said == []
