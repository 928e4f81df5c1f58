"""ROLLOUT_LOG_FORMAT: plain lines, or one JSON object per line with the known fields
(app/logs.py); and how a database outage is said (app/metrics_db/availability.py)."""

from __future__ import annotations

import io
import json
import logging

import pytest

from app.logs import JsonFormatter, json_line, say
from app.metrics_db.availability import Availability


def test_a_json_line_carries_time_level_event_and_the_known_fields() -> None:
    line = json_line("WARNING", "kill of alpha", "app.x", flag="alpha", actor="", audit_id="42")
    document = json.loads(line)
    assert set(document) == {"time", "level", "event", "logger", "flag", "audit_id"}
    assert (document["level"], document["event"], document["flag"]) == (
        "warning",
        "kill of alpha",
        "alpha",
    )
    assert document["time"].endswith("+00:00")


def test_a_log_record_with_fields_and_an_exception_is_one_json_line() -> None:
    record = logging.LogRecord(
        "app.notify", logging.ERROR, __file__, 1, "%s failed\nbadly", ("a",), None
    )
    record.flag, record.environment = "beta", "production"
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    text = JsonFormatter().format(record)
    assert "\n" not in text
    document = json.loads(text)
    assert (document["event"], document["flag"], document["environment"]) == (
        "a failed\nbadly",
        "beta",
        "production",
    )
    assert "ValueError: boom" in document["error"]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_say_prints_the_line_as_it_is_or_as_json(log_format: str) -> None:
    out = io.StringIO()
    say("production alpha: advance", log_format=log_format, out=out, flag="alpha", move="advance")
    if log_format == "text":
        assert out.getvalue() == "production alpha: advance\n"
    else:
        document = json.loads(out.getvalue())
        assert (document["event"], document["flag"], document["move"]) == (
            "production alpha: advance",
            "alpha",
            "advance",
        )


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_outage_is_said_once_then_every_interval_then_its_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    state = Availability("metrics database", 30, clock)
    caplog.set_level(logging.INFO, "app.metrics_db.availability")
    state.answered()  # up: nothing said
    for seconds in (0, 10, 20, 31, 45, 62):
        clock.now = 100 + seconds
        state.failed(ConnectionRefusedError("secret-host:5432"))
    clock.now = 145 + 2
    state.answered()
    state.answered()
    said = [(r.levelname, r.getMessage()) for r in caplog.records]
    refused = "ConnectionRefusedError"
    assert said == [
        (
            "ERROR",
            f"metrics database unavailable ({refused}): pages show what they have and retry; "
            "actions keep audit records in the local journal",
        ),
        (
            "WARNING",
            f"metrics database still unavailable after 31 s (4 failed attempts, {refused})",
        ),
        (
            "WARNING",
            f"metrics database still unavailable after 62 s (6 failed attempts, {refused})",
        ),
        ("WARNING", "metrics database available again after 47 s (6 failed attempts)"),
    ]
    assert "secret-host" not in caplog.text  # only the error's class
