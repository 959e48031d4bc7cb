"""Log redaction: sensitive keys dropped, known secret values blanked everywhere."""

from __future__ import annotations

import io
import json
import logging

from hookbird.logs import configure_logging, get_logger, redact


def test_redact_drops_sensitive_keys_at_any_depth() -> None:
    """token, secret, signature and Authorization keys disappear, nested ones too."""
    event = {
        "event": "x",
        "webhook_token": "a",
        "Moneybird-Signature": "t=1,v1=ab",
        "headers": {"Authorization": "Bearer z", "User-Agent": "ua"},
        "client_secret": "s",
        "items": [{"refresh_token": "r", "id": "1"}],
    }
    out = redact(None, "info", event)
    assert out == {"event": "x", "headers": {"User-Agent": "ua"}, "items": [{"id": "1"}]}


def test_known_secret_values_are_blanked_in_every_line() -> None:
    """A configured token inside a message, from structlog or stdlib logging, is blanked."""
    buffer = io.StringIO()
    configure_logging("info", "json", secrets=("super-secret-token-value",), stream=buffer)
    try:
        get_logger("test").info("calling with super-secret-token-value", detail="x")
        logging.getLogger("uvicorn.error").warning("header had super-secret-token-value")
    finally:
        configure_logging("info", "json")
    lines = [json.loads(line) for line in buffer.getvalue().splitlines()]
    assert len(lines) == 2
    assert "super-secret-token-value" not in buffer.getvalue()
    assert lines[0]["event"] == "calling with [redacted]"
    assert lines[1]["logger"] == "uvicorn.error"


def test_json_when_not_a_terminal() -> None:
    """Without a terminal the output is one JSON object per line with level and time."""
    buffer = io.StringIO()
    configure_logging("info", "auto", stream=buffer)
    try:
        get_logger("test").info("hello", n=1)
        get_logger("test").debug("hidden at info")
    finally:
        configure_logging("info", "json")
    (line,) = buffer.getvalue().splitlines()
    data = json.loads(line)
    assert data["event"] == "hello"
    assert data["level"] == "info"
    assert data["n"] == 1
    assert "timestamp" in data


def test_console_format_blanks_secrets_in_exception_text() -> None:
    """A configured token in an exception message is blanked in the console format too,
    from structlog and from a standard library logger, and the traceback is still shown."""
    buffer = io.StringIO()
    configure_logging("info", "console", secrets=("super-secret-token-value",), stream=buffer)
    try:
        try:
            raise ValueError("refused super-secret-token-value")
        except ValueError:
            get_logger("test").exception("handler failed")
            logging.getLogger("rq.worker").exception("job failed")
    finally:
        configure_logging("info", "json")
    text = buffer.getvalue()
    assert "super-secret-token-value" not in text
    assert text.count("ValueError: refused [redacted]") == 2
    assert text.count("Traceback (most recent call last)") == 2
