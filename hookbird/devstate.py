"""How every command finds the ``hookbird dev`` running in its folder.

``hookbird dev`` starts a private Redis on a port of its choosing and makes up a
webhook token; ``hookbird events``, ``failed``, ``doctor``, ``send``, ``config`` and the
rest, started in the same folder without ``REDIS_URL``, should use that Redis and that
token. dev writes ``dev.json`` into its data dir (mode 0600: the Redis URL may carry a
password) with its pid, Redis URL and endpoint; :func:`apply` fills the settings a
command did not get from the environment, as long as that pid still lives. When dev
stops, the file keeps only the private Redis port, so the next dev reuses it and a URL
noted down yesterday still works.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from hookbird.settings import Settings

STATE_FILE = "dev.json"
TOKEN_FILE = "dev-webhook-token"  # noqa: S105 - a file name, not a token


@dataclass(frozen=True)
class DevState:
    """What a running ``hookbird dev`` tells the commands of its folder."""

    pid: int | None = None
    redis_url: str | None = None
    redis_port: int | None = None  # of the private Redis, kept for the next dev
    endpoint: str | None = None
    token_file: bool = False  # dev accepts the token in TOKEN_FILE (none was configured)


def read(data_dir: Path) -> DevState | None:
    """The last state dev wrote in ``data_dir``, running or not; None if none or unreadable."""
    try:
        raw: Any = json.loads((data_dir / STATE_FILE).read_text(encoding="utf-8"))
        return DevState(**raw) if isinstance(raw, dict) else None
    except (OSError, ValueError, TypeError):
        return None


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process of ours."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process took the pid over
        return False
    return True


def running(data_dir: Path) -> DevState | None:
    """The state of the ``hookbird dev`` running in ``data_dir`` now, else None."""
    state = read(data_dir)
    if state is None or state.pid is None or not alive(state.pid):
        return None
    return state


def write(data_dir: Path, state: DevState) -> None:
    """Replace the state file in one step, readable by this user only."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / STATE_FILE
    partial = path.with_suffix(".tmp")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(asdict(state), out)
        out.write("\n")
    os.chmod(partial, 0o600)  # an older file may have been made with another mode
    os.replace(partial, path)


def stopped(data_dir: Path, state: DevState) -> None:
    """dev is stopping: keep only the private Redis port for the next one."""
    write(data_dir, DevState(redis_port=state.redis_port))


def dev_token(data_dir: Path) -> str | None:
    """The token dev made up and keeps in its data dir, if there is one."""
    try:
        return (data_dir / TOKEN_FILE).read_text().strip() or None
    except OSError:
        return None


def from_dev(settings: Settings) -> dict[str, int]:
    """Which settings values are those of the running dev: attribute → its pid."""
    state = running(settings.data_dir)
    if state is None or state.pid is None:
        return {}
    found = {}
    if state.redis_url and settings.redis_url == state.redis_url:
        found["redis_url"] = state.pid
    if state.token_file and settings.webhook_token == dev_token(settings.data_dir):
        found["webhook_token"] = state.pid
    return found


def apply(settings: Settings) -> Settings:
    """``settings`` with the running dev's Redis URL and token where they are unset."""
    state = running(settings.data_dir)
    if state is None:
        return settings
    changes: dict[str, Any] = {}
    if not settings.redis_url and state.redis_url:
        changes["redis_url"] = state.redis_url
    if not settings.webhook_token and state.token_file:
        token = dev_token(settings.data_dir)
        if token:
            changes["webhook_token"] = token
    return replace(settings, **changes) if changes else settings
