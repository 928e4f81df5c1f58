"""A dashboard served on seeded data, as the browser tests start it."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from app.metrics_db.database import insert_rollups, open_database
from app.serve import streamlit_command
from tests.support.servers import Process, free_port, start
from tests.support.workload import reference_rollups


def seeded_dashboard(
    state: Path,
    flags: str,
    *,
    seed: Callable[[Engine, datetime], object] | None = None,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    args: Sequence[str] = (),
) -> Process:
    """Streamlit on `state` with `flags` as its config and a SQLite database holding the
    reference workload for two hours ending one hour past now (so every window is fully
    covered whenever the page loads), plus what `seed(engine, end)` adds. `env` adds
    settings (e.g. `ROLLOUT_DEMO`); `port` (default: a free one) and `args` (more
    `streamlit run` options, e.g. `--secrets.files PATH`) shape the server."""
    (state / "feature_flags.yaml").write_text(flags)
    url = f"sqlite:///{state / 'metrics.db'}"
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    engine = open_database(url)
    insert_rollups(engine, reference_rollups(end, hours=2.0))
    if seed is not None:
        seed(engine, end)
    engine.dispose()
    port = port or free_port()
    settings = {"ROLLOUT_STATE_DIR": str(state), "ROLLOUT_DATABASE_URL": url, **(env or {})}
    return start([*streamlit_command(port), *args], settings, port, state / "streamlit.log")
