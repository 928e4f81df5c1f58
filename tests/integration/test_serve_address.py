"""`serve` binds 127.0.0.1 unless told otherwise; `--address` wins over the setting; a
bad address is refused with exit 2 and a clear message, before anything starts.

The bound address is read from the kernel's socket table (/proc/net/tcp), not from
what the command printed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.cli import main
from tests.support.servers import free_port

LISTEN = "0A"


def listening_addresses(port: int) -> set[str]:
    """IPv4 addresses with a socket listening on `port`, from /proc/net/tcp."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == LISTEN and int(hex_port, 16) == port:
            found.add(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[object]:
    """Start `rollout-dashboard serve ARGS` with `env`; stopped (whole group) afterwards."""
    started: list[subprocess.Popen[bytes]] = []

    def run(env: dict[str, str], *args: str) -> tuple[int, str]:
        port = free_port()
        clean = {k: v for k, v in os.environ.items() if not k.startswith("ROLLOUT_")}
        log = (tmp_path / f"serve-{port}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port), *args],
            env={**clean, "ROLLOUT_STATE_DIR": str(tmp_path), **env},
            cwd=tmp_path,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        started.append(process)
        return port, str(tmp_path / f"serve-{port}.log")

    yield run
    for process in started:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def wait_healthy(address: str, port: int, log: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{address}:{port}/_stcore/health", timeout=1) as r:
                if r.read() == b"ok":
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"not healthy on {address}:{port}:\n{Path(log).read_text()[-2000:]}")


def test_serve_binds_this_machine_only_by_default(serve) -> None:
    port, log = serve({})
    wait_healthy("127.0.0.1", port, log)
    assert listening_addresses(port) == {"127.0.0.1"}
    assert f"serving on 127.0.0.1:{port}" in Path(log).read_text()


@pytest.mark.parametrize(
    ("setting", "flag", "bound"),
    [("127.0.0.2", None, "127.0.0.2"), ("127.0.0.2", "127.0.0.3", "127.0.0.3")],
    ids=["setting", "flag wins over setting"],
)
def test_serve_binds_the_chosen_address(serve, setting: str, flag: str | None, bound: str):
    args = ("--address", flag) if flag else ()
    port, log = serve({"ROLLOUT_SERVER_ADDRESS": setting}, *args)
    wait_healthy(bound, port, log)
    assert listening_addresses(port) == {bound}


@pytest.mark.parametrize("address", ["nope", "0.0.0.0.0", "256.1.1.1", "example.com", ""])
def test_a_bad_address_flag_is_refused(address, capsys, no_rollout_environment) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["serve", "--address", address])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"argument --address: not an IP address: {address!r}" in err
    assert "0.0.0.0 for every interface" in err and "Traceback" not in err


def test_a_bad_address_setting_is_refused(capsys, monkeypatch, no_rollout_environment) -> None:
    monkeypatch.setenv("ROLLOUT_SERVER_ADDRESS", "my laptop")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "invalid settings: ROLLOUT_SERVER_ADDRESS: " in err
    assert "not an IP address: 'my laptop'" in err and "Traceback" not in err
