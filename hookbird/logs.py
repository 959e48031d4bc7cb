"""Logging, configured once per process.

structlog renders everything: hookbird's own log calls and the standard library
loggers of uvicorn and RQ, which are routed through the same processors. Output is
JSON when stderr is not a terminal and a readable console format when it is.

Every event passes :func:`redact` last before rendering: keys that name a token,
secret, signature, password or Authorization header are dropped, and any known
secret value (the configured tokens and keys) is blanked wherever it appears in a
string, exception messages and tracebacks included (they are plain text by then,
in the console format too). Log calls should still never pass secrets; this is
the net under them.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog

SENSITIVE_KEY_PARTS = (
    "token",
    "secret",
    "signature",
    "authorization",
    "password",
    "api_key",
    "cookie",
    "credential",
)
REDACTED = "[redacted]"

_known_secrets: tuple[str, ...] = ()


@functools.lru_cache(maxsize=4096)
def is_sensitive_key(key: str) -> bool:
    lowered = key.lower().replace("-", "_")
    return any(part in lowered for part in SENSITIVE_KEY_PARTS)


def add_known_secrets(values: Iterable[str]) -> None:
    """Blank these values wherever they appear in a log line (tokens learnt at run time)."""
    global _known_secrets
    # Short values would blank innocent text; real tokens and secrets are long.
    new = {v for v in values if v and len(v) >= 8}
    _known_secrets = tuple(sorted(set(_known_secrets) | new, key=len, reverse=True))


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        for secret in _known_secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items() if not is_sensitive_key(str(k))}
    if isinstance(value, (list, tuple)):
        return type(value)(_scrub(v) for v in value)
    return value


def redact(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> Any:
    """structlog processor: drop sensitive keys, blank known secret values."""
    for key in [k for k in event_dict if is_sensitive_key(k)]:
        del event_dict[key]
    for key, value in event_dict.items():
        if isinstance(value, (str, dict, list, tuple)):
            event_dict[key] = _scrub(value)
    return event_dict


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of writing (test runners swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure_logging(
    level: str = "info",
    fmt: str = "auto",
    *,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    """Set up structlog and the standard library's root logger for this process."""
    out: Any = stream if stream is not None else _CurrentStderr()
    add_known_secrets(secrets)
    as_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    numeric_level = logging.getLevelName(level.upper())

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if as_json:
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    # Tracebacks become text before redact, in both formats: the console renderer's own
    # (pretty, maybe colourised) traceback would be written after redact had run.
    tail: list[Any] = [structlog.processors.format_exc_info, redact]

    structlog.configure(
        processors=[*shared, *tail, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        # Not cached: module-level loggers must follow a later configure_logging().
        cache_logger_on_first_use=False,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *tail,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)
    # uvicorn and RQ may install handlers of their own; route them through ours instead.
    # A logger switched off by its library (uvicorn's access log with access_log=False
    # has no handlers and does not propagate) stays off.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "rq", "rq.worker", "rq.queue"):
        lib_logger = logging.getLogger(name)
        if lib_logger.handlers:
            lib_logger.handlers[:] = []
            lib_logger.propagate = True


def get_logger(name: str | None = None, **initial: Any) -> Any:
    """A structlog logger; ``name`` becomes the ``component`` field."""
    if name is not None:
        initial["component"] = name
    return structlog.get_logger(**initial)
