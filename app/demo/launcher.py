"""`rollout-dashboard demo`: the dashboard on embedded defaults, with the simulated
workload and the autopilot on two seeded plans (`serve`, the dashboard alone, is
`app.serve`).

The demo binds to 127.0.0.1 only: it acts as a local operator without sign-in, so it
must not be reachable from other machines.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from app.demo.autopilot_demo import autopilot_environment, simulator_options
from app.flags.loader import BUNDLED_CONFIG
from app.metrics_db.database import open_database
from app.serve import interrupt_on_sigterm, streamlit_command

__all__ = ["prepare_state_dir", "run_demo"]


def prepare_state_dir(state_dir: Path) -> Path:
    """Create `state_dir` with a copy of the bundled config (kept if already there);
    returns the base flag file."""
    state_dir.mkdir(parents=True, exist_ok=True)
    for source in sorted(BUNDLED_CONFIG.parent.glob("feature_flags*.yaml")):
        target = state_dir / source.name
        if not target.exists():
            shutil.copyfile(source, target)
    return state_dir / BUNDLED_CONFIG.name


def run_demo(
    state_dir: Path,
    port: int,
    *,
    simulator_port: int = 9464,
    with_prometheus: bool = False,
    with_unleash: bool = False,
) -> int:
    """Simulator + (optional) Prometheus + (optional) Unleash + Streamlit until
    interrupted."""
    state_dir = state_dir.resolve()
    flags_file = prepare_state_dir(state_dir)
    database_url = f"sqlite:///{state_dir / 'metrics.db'}"
    open_database(database_url).dispose()  # migrate once, before two processes race to
    env = {
        **os.environ,
        "ROLLOUT_STATE_DIR": str(state_dir),
        "ROLLOUT_FLAGS_FILE": str(flags_file),
        "ROLLOUT_DATABASE_URL": database_url,
        "ROLLOUT_DEMO": "true",
        **autopilot_environment(),
    }
    workload = ["--flags-file", str(flags_file), *simulator_options()]
    simulator_env = env
    unleash = None
    if with_unleash:
        from app.demo.unleash_demo import start_demo_unleash

        print("starting a local Unleash server (the first time takes a minute)", flush=True)
        unleash = start_demo_unleash(state_dir, flags_file).server
        env |= {
            "ROLLOUT_FLAG_BACKEND": "unleash",
            "ROLLOUT_UNLEASH_URL": unleash.url,
            "ROLLOUT_UNLEASH_TOKEN": unleash.admin_token,
        }
        simulator_env = env | {"ROLLOUT_DEMO_UNLEASH_SDK_TOKENS": json.dumps(unleash.sdk_tokens)}
        workload = ["--unleash-api-url", unleash.api_url, *simulator_options()]
        print(f"Unleash: {unleash.url}  (its log: {unleash.log_path})", flush=True)
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.demo.simulator",
                *workload,
                "--database-url",
                database_url,
                "--port",
                str(simulator_port),
            ],
            env=simulator_env,
        )
    ]
    if with_prometheus:
        prometheus_port = simulator_port + 1
        children.append(_start_prometheus(state_dir, simulator_port, prometheus_port))
        env["ROLLOUT_PROMETHEUS_URL"] = f"http://127.0.0.1:{prometheus_port}"
    # the autopilot on the demo's two plans; SIGTERM stops it and lets its lease go
    children.append(subprocess.Popen([sys.executable, "-m", "app.demo.autopilot_demo"], env=env))
    print(f"Rollout Dashboard demo: http://localhost:{port}  (state in {state_dir})", flush=True)
    interrupt_on_sigterm()  # a CI runner, `timeout`, a container stop: clean up as Ctrl-C
    try:
        return subprocess.call(streamlit_command(port), env=env)
    except KeyboardInterrupt:
        return 0
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        if unleash is not None:
            unleash.stop()


def _start_prometheus(state_dir: Path, target_port: int, port: int) -> subprocess.Popen[bytes]:
    binary = shutil.which("prometheus")
    if binary is None:
        raise SystemExit(
            "--with-prometheus needs the `prometheus` binary (apt-get install prometheus)"
        )
    config = state_dir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 5s\n  evaluation_interval: 5s\n"
        "scrape_configs:\n  - job_name: rollout-demo\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
    )
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={state_dir / 'prometheus'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=1):
                return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("local Prometheus did not become ready within 20 s")
