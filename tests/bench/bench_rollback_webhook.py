"""A kill from the terminal with a webhook receiver that accepts the connection and never
answers (issue 23, point 6): `rollout-dashboard rollback FLAG --kill` with
ROLLOUT_NOTIFY_MANUAL_ACTIONS on, against the same kill with no webhook configured (the
bare command) and the bare imports. Target: the kill with the hung receiver <= 1.5x the
bare command. Each kill writes a `handed_over` delivery row; the bench checks each one
is there (kept for the autopilot, not lost) and that the receiver was never waited on.

Run: `uv run python -m tests.bench.bench_rollback_webhook [--runs N]`. Every command is
a fresh process, timed spawn to exit, interleaved with its baselines (one unmeasured
warm-up round first); flags in a 1,000-flag YAML config, the metrics database SQLite.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

from sqlalchemy import create_engine, select

from app.metrics_db.database import open_database
from app.metrics_db.schema import WebhookDeliveryRow
from tests.bench.bench_actions import write_config
from tests.bench.bench_cli import BASELINE, CLI, clean_env, interleaved, run, verdict
from tests.bench.bench_overview import spread
from tests.support.webhook_receiver import NeverAnswers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    if not Path(CLI[0]).exists():
        raise SystemExit(f"{CLI[0]} not found: run `uv sync` first")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    hung = NeverAnswers()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            measure(args.runs, Path(tmp), hung)
    finally:
        hung.stop()


def measure(runs: int, workdir: Path, hung: NeverAnswers) -> None:
    base = write_config(workdir, 1000)
    url = f"sqlite:///{workdir / 'metrics.db'}"
    open_database(url).dispose()  # an installed dashboard's database is migrated already
    common = {
        "ROLLOUT_STATE_DIR": str(workdir),
        "ROLLOUT_FLAGS_FILE": str(base),
        "ROLLOUT_DATABASE_URL": url,
        "ROLLOUT_ROLES": json.dumps({"bench": "operator"}),
        "ROLLOUT_APPROVAL_ENVIRONMENTS": "[]",
    }
    bare = clean_env(**common)
    hooked = clean_env(
        **common,
        ROLLOUT_WEBHOOKS="oncall=json",
        ROLLOUT_WEBHOOK_URL_ONCALL=hung.url,
        ROLLOUT_NOTIFY_MANUAL_ACTIONS="true",
    )
    flags = iter(range(1, 1000))

    def kill(env: dict[str, str]) -> float:
        flag = f"flag_{next(flags):05d}"  # a different flag each run: every run writes
        done = run([*CLI, "rollback", flag, "--kill", "--reason", "bench", "--actor", "bench"], env)
        assert f"{flag}: rollout 25 % → disabled 0 %" in done.stdout, done.stdout
        return done.seconds

    samples = interleaved(
        runs,
        {
            "baseline": lambda _: run(BASELINE, bare).seconds,
            "kill": lambda _: kill(bare),
            "kill+hung": lambda _: kill(hooked),
        },
    )
    engine = create_engine(url)
    with engine.connect() as connection:
        statuses = connection.execute(select(WebhookDeliveryRow.status)).scalars().all()
    engine.dispose()
    assert statuses == ["handed_over"] * (runs + 1), statuses  # warm-up included: none lost
    assert hung.connections == 0, "a kill connected to the receiver"

    baseline = statistics.median(samples["baseline"])
    bare_kill = statistics.median(samples["kill"])
    hung_kill = statistics.median(samples["kill+hung"])
    print(f"\nkill from the terminal, {runs} runs each  [1,000-flag YAML, SQLite in {workdir}]")
    print(f"  baseline imports      {spread([1000 * s for s in samples['baseline']], ' ms', 0)}")
    print(f"  kill, no webhook      {spread([1000 * s for s in samples['kill']], ' ms', 0)}")
    print(f"  kill, hung receiver   {spread([1000 * s for s in samples['kill+hung']], ' ms', 0)}")
    print(
        f"  = {hung_kill / bare_kill:.2f}x the bare kill (target <= 1.5x): "
        f"{verdict(hung_kill, 1.5 * bare_kill)}; {hung_kill / baseline:.2f}x the bare imports"
    )
    print(f"  {len(statuses)} deliveries kept as handed_over for the autopilot; 0 connections")


if __name__ == "__main__":
    main()
