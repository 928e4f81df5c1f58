"""The overview's last change of a flag: the dashboard's own, or one made in the flag
server itself (Unleash's UI or API), whichever is newer; told apart in the text."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pandas as pd

from app.analysis.health import Health
from app.flags.model import FlagState
from app.services.overview import FlagRow, LastChange, with_external_changes
from app.ui.overview_table import last_change_text, why_text

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Edit:
    flag: str
    at: datetime
    actor: str
    summary: str

    @property
    def label(self) -> str:
        return f"changed in Unleash by {self.actor}: {self.summary}"


def ours(*rows: tuple[str, datetime, str, float, float]) -> pd.DataFrame:
    return pd.DataFrame(
        [(flag, at, actor, "advance", before, after) for flag, at, actor, before, after in rows],
        columns=["flag", "at", "actor", "action", "from_percentage", "to_percentage"],
    )


def test_the_newer_of_the_two_wins_per_flag() -> None:
    changes = ours(
        ("checkout", NOW - timedelta(hours=2), "alice", 5, 10),
        ("search", NOW - timedelta(minutes=5), "bob", 10, 25),
    )
    edits = [
        Edit("checkout", NOW - timedelta(minutes=3), "olga", "rollout 10 % → 25 %"),
        Edit("checkout", NOW - timedelta(hours=5), "olga", "switched on"),
        Edit("search", NOW - timedelta(hours=1), "olga", "rollout 5 % → 10 %"),  # older
        Edit("dark_mode", NOW - timedelta(days=1), "pat", "switched off"),  # ours had none
    ]

    merged = with_external_changes(changes, edits).set_index("flag")

    assert merged.loc["checkout", "summary"] == "changed in Unleash by olga: rollout 10 % → 25 %"
    assert merged.loc["checkout", "actor"] == "olga"
    assert math.isnan(merged.loc["checkout", "to_percentage"])
    assert merged.loc["search", "actor"] == "bob" and merged.loc["search", "summary"] == ""
    assert merged.loc["search", "to_percentage"] == 25
    assert merged.loc["dark_mode", "summary"] == "changed in Unleash by pat: switched off"
    assert sorted(merged.index) == ["checkout", "dark_mode", "search"]


def test_no_outside_change_leaves_the_dashboards_changes_as_they_are() -> None:
    changes = ours(("checkout", NOW, "alice", 5, 10))
    assert with_external_changes(changes, []) is changes


def _row(**kwargs: object) -> FlagRow:
    row = FlagRow(
        flag="checkout",
        phase=None,
        state=FlagState.ROLLOUT,
        percentage=25.0,
        description="",
        evaluations_per_second=1.0,
        variants={},
        error_rate=0.0,
        p50_seconds=None,
        p99_seconds=None,
        health=Health.HEALTHY,
    )
    return replace(row, **kwargs)  # type: ignore[arg-type]


def test_the_text_says_who_changed_it_where() -> None:
    outside = LastChange(
        NOW - timedelta(minutes=3),
        "olga",
        "external",
        math.nan,
        math.nan,
        "changed in Unleash by olga: rollout 10 % → 25 %",
    )
    mine = LastChange(NOW - timedelta(minutes=12), "alice", "advance", 25.0, 50.0)

    assert last_change_text(_row(last_change=outside), NOW) == (
        "3 min ago · changed in Unleash by olga: rollout 10 % → 25 %"
    )
    assert last_change_text(_row(last_change=mine), NOW) == "12 min ago · alice · 25 → 50 %"
    assert last_change_text(_row(), NOW) == "–"
    # status --json: no NaN (not JSON), the summary instead of percentages
    document = json.loads(json.dumps(_row(last_change=outside).as_json(), allow_nan=False))
    assert document["last_change"]["summary"] == "changed in Unleash by olga: rollout 10 % → 25 %"
    assert document["last_change"]["to_percentage"] is None


def test_a_read_only_flag_says_why_after_its_health_reasons() -> None:
    row = _row(read_only="its strategy has constraints", reasons=("errors 6 % > 5 %",))
    assert why_text(row, NOW) == "errors 6 % > 5 % · read-only: its strategy has constraints"
    assert why_text(_row(), NOW) == ""


def test_the_phases_page_lists_outside_changes_with_their_phase() -> None:
    from app.flags.model import FlagConfig, FlagDefinition, FlagMetadata
    from app.services.phases import outside_changes_table

    config = FlagConfig(
        version="1",
        flags={
            "checkout": FlagDefinition(
                key="checkout", state=FlagState.ROLLOUT, metadata=FlagMetadata(phase=3)
            ),
            "dark_mode": FlagDefinition(key="dark_mode", state=FlagState.DISABLED),
        },
    )
    edits = [
        Edit("checkout", NOW - timedelta(minutes=3), "olga", "rollout 10 % → 25 %"),
        Edit("dark_mode", NOW - timedelta(hours=2), "pat", "switched off"),
    ]

    table = outside_changes_table(edits, config, NOW)

    assert table.to_dict("records") == [
        {
            "When": "3 min ago",
            "Phase": "3",
            "Flag": "checkout",
            "Change": "changed in Unleash by olga: rollout 10 % → 25 %",
        },
        {
            "When": "2 h ago",
            "Phase": "–",
            "Flag": "dark_mode",
            "Change": "changed in Unleash by pat: switched off",
        },
    ]
