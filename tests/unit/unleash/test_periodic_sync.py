"""`serve`'s periodic sync: a failing sync (here a real one: nothing listens on the
port) is one line of log each time, and the next run comes anyway."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from app.metrics_db.database import open_database
from app.settings import Settings, SettingsInvalid, load_settings
from app.unleash.api import UnleashApi
from app.unleash.metrics_sync import sync_periodically, sync_unleash
from app.unleash.periodic_sync import recent_hours, start_periodic_sync
from tests.support.servers import free_port

TOKEN = "*:*.periodic-secret-1234"  # made up; checked to stay unseen


def test_each_failure_is_one_line_and_the_runs_go_on(tmp_path: Path) -> None:
    engine = open_database(f"sqlite:///{tmp_path / 'metrics.db'}")
    api = UnleashApi(f"http://127.0.0.1:{free_port()}", TOKEN, timeout=2)
    stop = threading.Event()
    runs: list[int] = []
    lines: list[str] = []

    def sync_once() -> None:
        runs.append(1)
        if len(runs) == 3:
            stop.set()
        sync_unleash(api, engine, "default")

    thread = threading.Thread(
        target=sync_periodically, args=(sync_once, timedelta(seconds=0.01), stop, lines.append)
    )
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert len(runs) == 3 and len(lines) == 3
    for line in lines:
        assert "\n" not in line and TOKEN not in line and "periodic-secret" not in line
        assert line.startswith(
            "unleash sync failed: UnleashUnavailable: Unleash unavailable: "
            "GET /api/admin/projects/default/features failed"
        )
    engine.dispose()


def test_no_periodic_sync_when_off_or_not_configured(tmp_path: Path) -> None:
    configured = Settings(state_dir=tmp_path, unleash_url="http://127.0.0.1:9", unleash_token=TOKEN)
    for settings in (
        configured.model_copy(update={"unleash_sync_minutes": 0}),
        configured.model_copy(update={"unleash_url": None}),
        configured.model_copy(update={"unleash_token": None}),
    ):
        assert start_periodic_sync(settings) is None
    assert not (tmp_path / "metrics.db").exists()  # nothing was opened


def test_after_a_whole_run_the_periodic_runs_re_read_the_recent_hours_only() -> None:
    """Since the last run, the still-filling hour, and one for late SDK reports."""
    assert [recent_hours(m) for m in (1, 10, 60, 61, 120, 600, 1440)] == [3, 3, 3, 4, 4, 12, 26]


def test_the_period_is_a_setting_with_a_range(no_rollout_environment: None) -> None:
    assert Settings().unleash_sync_minutes == 10
    for bad in (-1, 24 * 60 + 1):
        with pytest.raises(SettingsInvalid, match="ROLLOUT_UNLEASH_SYNC_MINUTES"):
            load_settings(unleash_sync_minutes=bad)
