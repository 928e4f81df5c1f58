"""Failures around `sync-unleash` that need no Unleash server: `serve` with Unleash
unreachable still comes up and its periodic sync says so on one line of its log; the
command with the metrics database down exits 4. No token or password in any message."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from app.cli import main
from tests.integration.test_serve_address import serve, wait_healthy
from tests.support.servers import free_port

__all__ = ["serve"]  # the fixture, used by name below

TOKEN = "*:*.serve-sync-secret-8086"  # made up; checked to stay unseen


def test_serve_comes_up_and_logs_a_failed_sync_on_one_line(serve) -> None:
    port, log = serve(
        {
            "ROLLOUT_UNLEASH_URL": f"http://127.0.0.1:{free_port()}",
            "ROLLOUT_UNLEASH_TOKEN": TOKEN,
            "ROLLOUT_UNLEASH_SYNC_MINUTES": "1",
        }
    )
    wait_healthy("127.0.0.1", port, log)
    deadline = time.monotonic() + 30
    while "unleash sync failed" not in Path(log).read_text():
        assert time.monotonic() < deadline, Path(log).read_text()[-2000:]
        time.sleep(0.2)
    text = Path(log).read_text()
    (line,) = [line for line in text.splitlines() if "unleash sync" in line]
    assert line.startswith("unleash sync failed: UnleashUnavailable: Unleash unavailable: GET ")
    assert "Connection refused" in line
    assert "serve-sync-secret" not in text and "Traceback" not in text


def test_sync_with_the_metrics_database_down_exits_4_and_says_so(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    no_rollout_environment: None,
) -> None:
    monkeypatch.chdir(tmp_path)
    closed = free_port()
    monkeypatch.setenv("ROLLOUT_UNLEASH_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("ROLLOUT_UNLEASH_TOKEN", TOKEN)
    monkeypatch.setenv(
        "ROLLOUT_DATABASE_URL", f"postgresql+psycopg://rollout:pw-5150@127.0.0.1:{closed}/r"
    )
    assert main(["sync-unleash", "--hours", "1"]) == 4
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: metrics database: OperationalError: ")
    assert len(err.strip().splitlines()) == 1
    assert "serve-sync-secret" not in err and "pw-5150" not in err
