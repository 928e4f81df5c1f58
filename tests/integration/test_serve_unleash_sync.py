"""`serve` with Unleash configured but unreachable: the dashboard still comes up, and
the periodic sync says so on one line of its log, without the token."""

from __future__ import annotations

import time
from pathlib import Path

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
