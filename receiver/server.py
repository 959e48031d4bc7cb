"""How hookbird runs the receiver under uvicorn: one set of options for ``serve`` and ``dev``.

``receiver.protocol.ReceiverProtocol`` extends uvicorn's ``HttpToolsProtocol``, which
is not public API: a uvicorn release may rename what it overrides or reads. So
pyproject.toml bounds uvicorn to the releases it is tested on, and before the
receiver starts :func:`missing_internals` checks that every method and attribute
it relies on is still there. If one is missing, hookbird logs one warning and serves
everything through uvicorn's own protocol, the plain ASGI way, with what of the
edge's defences uvicorn can still apply: the idle timeout between requests
(uvicorn's keep-alive timeout; not before the first one), a connection cap as uvicorn's
``limit_concurrency`` (503s instead of refused connections), 408 and 413 closing
the connection (without lingering), 400 for an ``Upgrade`` on the push path, no
redirects, ``X-Forwarded-For`` that is no IP address ignored. The header timeout,
the head caps (431) and lingering close need the protocol.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from hookbird.logs import get_logger
from hookbird.settings import Settings

log = get_logger("hookbird.receiver")

#: Methods of ``HttpToolsProtocol`` that ``receiver.edge`` and ``receiver.protocol``
#: override and call through ``super()``, or call as uvicorn's.
METHODS = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_url",
    "on_header",
    "on_headers_complete",
    "on_body",
    "on_message_complete",
    "on_response_complete",
    "shutdown",
    "_should_upgrade",
)
#: Attributes they read or set, by the ``HttpToolsProtocol`` method that sets them.
ATTRIBUTES = {
    "__init__": (
        "config",
        "app",
        "loop",
        "parser",
        "limit_concurrency",
        "timeout_keep_alive",
        "server_state",
        "connections",
        "tasks",
        "pipeline",
        "cycle",
        "expect_100_continue",
    ),
    "connection_made": ("transport", "client"),
    "on_message_begin": ("url", "headers"),
    "on_response_complete": ("pipeline", "timeout_keep_alive"),
}
#: What the protocol's stand-in for a request cycle must provide, as uvicorn's does.
CYCLE_ATTRIBUTES = ("response_complete", "keep_alive", "disconnected", "message_event")


def missing_internals(base: type | None = None, cycle: type | None = None) -> list[str]:
    """The uvicorn internals the receiver's protocol relies on that ``base`` (uvicorn's
    ``HttpToolsProtocol``) and ``cycle`` (its ``RequestResponseCycle``) lack; empty
    when the protocol can be used."""
    if base is None or cycle is None:
        try:
            from uvicorn.protocols.http import httptools_impl
        except ImportError as exc:  # uvicorn without httptools, or moved
            return [f"uvicorn.protocols.http.httptools_impl ({exc})"]
        base = base or getattr(httptools_impl, "HttpToolsProtocol", None)
        cycle = cycle or getattr(httptools_impl, "RequestResponseCycle", None)
        if not isinstance(getattr(httptools_impl, "STATUS_LINE", None), dict):
            return ["httptools_impl.STATUS_LINE"]
        if base is None or cycle is None:
            return ["httptools_impl.HttpToolsProtocol/RequestResponseCycle"]
    missing = [name for name in METHODS if not callable(getattr(base, name, None))]
    for method, names in ATTRIBUTES.items():
        code = getattr(getattr(base, method, None), "__code__", None)
        assigned = set(code.co_names) if code is not None else set()
        missing += [f"{method}: self.{name}" for name in names if name not in assigned]
    code = getattr(getattr(cycle, "__init__", None), "__code__", None)
    cycle_names = set(code.co_names) if code is not None else set()
    missing += [f"RequestResponseCycle.{n}" for n in CYCLE_ATTRIBUTES if n not in cycle_names]
    return missing


def protocol_supported(base: type | None = None, cycle: type | None = None) -> bool:
    """Whether ``receiver.protocol.ReceiverProtocol`` can run on this uvicorn."""
    return not missing_internals(base, cycle)


def uvicorn_options(
    settings: Settings, *, base: type | None = None, cycle: type | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` (besides the app, host, port and workers)
    that both ``hookbird serve`` and ``hookbird dev`` use. ``base`` and ``cycle``
    stand in for uvicorn's classes in the tests of the fallback."""
    options: dict[str, Any] = {
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "proxy_headers": True,
        "timeout_keep_alive": settings.idle_timeout,
    }
    missing = missing_internals(base, cycle)
    if not missing:
        from receiver.protocol import ReceiverProtocol

        options["http"] = ReceiverProtocol
        return options
    import uvicorn

    log.warning(
        "uvicorn's internals are not what hookbird's receiver protocol expects: "
        "serving every request through uvicorn's own protocol, without the header "
        "timeout, the head caps and lingering close; install a uvicorn in the range "
        "pyproject.toml names",
        uvicorn=uvicorn.__version__,
        missing=", ".join(missing),
    )
    options["http"] = "httptools" if importlib.util.find_spec("httptools") else "auto"
    options["limit_concurrency"] = settings.max_connections
    return options
