"""The Canary page's words once the canary's flag is killed, and its p99 in ms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from app.audit import AuditEntry, Outcome, RecordedAction
from app.flags.model import FlagDefinition, FlagState
from app.services.canary import canary_killed_note, latency_ms_frame

NOW = datetime(2026, 12, 7, 18, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=15)
KILLED = FlagDefinition(key="canary_deployment", state=FlagState.DISABLED)


def _kill(ago: timedelta) -> AuditEntry:
    return AuditEntry(
        at=NOW - ago,
        actor="olga",
        action=RecordedAction.KILL,
        flag="canary_deployment",
        environment="production",
        from_state=FlagState.ROLLOUT,
        from_percentage=10.0,
        to_state=FlagState.DISABLED,
        to_percentage=0.0,
        reason="canary fails",
        outcome=Outcome.APPLIED,
    )


def test_a_kill_inside_the_window_says_the_verdict_covers_the_time_before() -> None:
    assert canary_killed_note(KILLED, _kill(timedelta(minutes=10)), WINDOW, NOW) == (
        "Canary flag killed at 2026-12-07 17:50 UTC by olga: the verdict covers the window "
        "before the kill (the last 15 min, from 17:45 UTC); requests to the canary since the "
        "kill come from instances that had not yet loaded it."
    )


def test_a_kill_older_than_the_window_says_the_verdict_judges_stragglers() -> None:
    note = canary_killed_note(KILLED, _kill(timedelta(hours=1)), WINDOW, NOW)
    assert note is not None
    assert note.startswith("Canary flag killed at 2026-12-07 17:00 UTC by olga: this 15 min")
    assert "window starts after the kill" in note


def test_a_canary_flag_still_serving_gets_no_note() -> None:
    serving = FlagDefinition(key="canary_deployment", state=FlagState.ROLLOUT)
    assert canary_killed_note(serving, _kill(timedelta(minutes=1)), WINDOW, NOW) is None


def test_the_p99_chart_is_in_milliseconds() -> None:
    frame = pd.DataFrame({"track": ["canary"], "seconds": [0.3905]})
    assert latency_ms_frame(frame)["ms"].tolist() == [390.5]
