"""The CLI run under a user id with no passwd entry, as OpenShift runs an image: it acts
as `uid-<n>` and records that name in the audit log, instead of stopping.

The command runs as a real other user (the test runs as root and drops to an unused id).
This project's interpreter lives under /root, which other users cannot enter here, so
the child runs Debian's `python3` (the same 3.11) on the project's installed packages.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select

from app.metrics_db.schema import AuditRecord
from tests.support.bundled import copy_bundled_config
from tests.support.cli_process import ROOT, cli_environment

SYSTEM_PYTHON = "/usr/bin/python3"
FLAG, ENV = "ab_testing", "production"


def _unused_uid() -> int:
    uid = 54321
    while True:
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
        uid += 1


@pytest.fixture
def home() -> Iterator[tuple[Path, int]]:
    """A directory owned by an unused user id (outside pytest's root-only temp dir)."""
    assert os.geteuid() == 0, "this test drops to another user id: run the suite as root"
    uid = _unused_uid()
    directory = Path(tempfile.mkdtemp(prefix="rollout-uid-"))
    try:
        (directory / "state").mkdir()
        copy_bundled_config(directory / "state")
        for path in [directory, *directory.rglob("*")]:
            os.chown(path, uid, uid)
        yield directory, uid
    finally:
        shutil.rmtree(directory)


def test_a_user_id_without_a_passwd_entry_acts_as_uid_n(home: tuple[Path, int]) -> None:
    directory, uid = home
    account = f"uid-{uid}"
    database = directory / "state" / "metrics.db"
    env = cli_environment(directory / "state", f"sqlite:///{database}", account)
    env |= {
        "HOME": str(directory),
        "PYTHONPATH": os.pathsep.join([str(ROOT), sysconfig.get_paths()["purelib"]]),
        "PYTHONDONTWRITEBYTECODE": "1",
        "USER": "root",  # never believed: the name comes from the user id
        "LOGNAME": "root",
    }
    rollback = ("rollback", FLAG, "--env", ENV, "--to", "10", "--reason", "as any uid", "--json")
    done = subprocess.run(
        [SYSTEM_PYTHON, "-m", "app.cli", *rollback],
        cwd=ROOT,
        env=env,
        user=uid,
        group=uid,
        extra_groups=[],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["applied"] is True

    engine = create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as connection:
            actors = connection.execute(select(AuditRecord.actor)).scalars().all()
    finally:
        engine.dispose()
    assert actors == [account]
    assert database.stat().st_uid == uid  # written by that user, not by root
