"""`rollout-dashboard demo --with-unleash`: the demo against a real, local Unleash.

The launcher starts the pinned unleash-server (app/demo/unleash_server.py, as the tests
start it) over a PostgreSQL database of its own, creates the bundled demo flags there
the first time (production from the base file, development from the staging overrides),
and keeps the tokens in the state directory (readable by its owner only) so a second
start reuses the same server data. Each state directory has its own database. The
simulator then evaluates every flag through the real `UnleashClient` SDK.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from app.demo.unleash_server import LocalUnleash, start_unleash
from app.flags.loader import load_config
from app.flags.model import FlagConfig, FlagState, RolloutStrategy
from app.unleash.api import UnleashApi, UnleashRefused

__all__ = [
    "DEMO_ENVIRONMENTS",
    "DemoUnleash",
    "seed_unleash",
    "start_demo_unleash",
]

#: Unleash environment → the bundled config's environment it is seeded from.
DEMO_ENVIRONMENTS = {"production": "production", "development": "staging"}
POSTGRES_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"


@dataclass(frozen=True)
class DemoUnleash:
    server: LocalUnleash
    seeded: int


def demo_database_name(state_dir: Path) -> str:
    """One Unleash database per demo state directory: `rollout_demo_unleash_<hash>`."""
    digest = hashlib.sha256(str(state_dir.resolve()).encode()).hexdigest()[:8]
    return f"rollout_demo_unleash_{digest}"


def _demo_database(name: str, fresh: bool, admin_dsn: str = POSTGRES_ADMIN) -> str:
    """The demo's Unleash database on the local PostgreSQL, created when missing, and
    recreated when `fresh` (its tokens were lost: Unleash makes tokens on a first start
    only, so the old database would refuse the new ones)."""
    import psycopg

    try:
        with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as admin:
            if fresh:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            found = admin.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if found is None:
                admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as error:
        raise SystemExit(
            "--with-unleash needs PostgreSQL at 127.0.0.1:5432 (user postgres) for the "
            f"Unleash server's data: {str(error).splitlines()[0]}"
        ) from None
    return f"postgres://postgres@127.0.0.1:5432/{name}"


def _tokens(state_dir: Path) -> tuple[dict[str, str], bool]:
    """The demo server's admin token and SDK secret, made once and kept (mode 0600);
    True when they were just made."""
    import secrets

    path = state_dir / "unleash-tokens.json"
    if path.is_file():
        stored = json.loads(path.read_text())
        return {"admin": str(stored["admin"]), "sdk": str(stored["sdk"])}, False
    tokens = {"admin": f"*:*.{secrets.token_hex(16)}", "sdk": secrets.token_hex(16)}
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(tokens, handle)
    return tokens, True


def start_demo_unleash(state_dir: Path, flags_file: Path) -> DemoUnleash:
    """Start the demo's Unleash and seed it from `flags_file` when its project is empty."""
    tokens, new = _tokens(state_dir)
    server = start_unleash(
        _demo_database(demo_database_name(state_dir), fresh=new),
        state_dir / "unleash.log",
        environments=tuple(DEMO_ENVIRONMENTS),
        admin_token=tokens["admin"],
        sdk_secret=tokens["sdk"],
    )
    try:
        api = UnleashApi(server.url, server.admin_token, timeout=30)
        configs = {
            unleash_env: load_config(flags_file, ours)
            for unleash_env, ours in DEMO_ENVIRONMENTS.items()
        }
        seeded = seed_unleash(api, "default", configs)
    except BaseException:
        server.stop()
        raise
    return DemoUnleash(server, seeded)


def seed_unleash(api: UnleashApi, project: str, configs: dict[str, FlagConfig]) -> int:
    """Create every flag of `configs` (Unleash environment → config) in `project` when it
    has no feature yet; returns how many features were created (0: already seeded).

    Each flag gets one flexibleRollout strategy per environment at its percentage, the
    environment on unless the flag is disabled there. A `user_list` rollout becomes a
    `userId IN (...)` constraint, which the dashboard shows read-only, with the reason.
    """
    base = f"/api/admin/projects/{project}/features"
    if api.get(base)["features"]:
        return 0
    names = sorted({key for config in configs.values() for key in config.flags})
    for name in names:
        description = next(
            (c.flags[name].metadata.description for c in configs.values() if name in c.flags), ""
        )
        try:
            api.post(base, {"name": name, "type": "release", "description": description[:100]})
        except UnleashRefused as error:
            if error.status != 409:  # already there: a seed interrupted half-way
                raise
        for environment, config in configs.items():
            flag = config.flags.get(name)
            if flag is None:
                continue
            rollout = round(flag.rollout.percentage)
            if flag.state is FlagState.ENABLED:
                rollout = 100
            constraints = (
                [
                    {
                        "contextName": "userId",
                        "operator": "IN",
                        "values": list(flag.rollout.user_list) or ["nobody"],
                    }
                ]
                if flag.rollout.strategy is RolloutStrategy.USER_LIST
                else []
            )
            path = f"{base}/{name}/environments/{environment}"
            if not api.get(f"{path}/strategies"):
                api.post(
                    f"{path}/strategies",
                    {
                        "name": "flexibleRollout",
                        "constraints": constraints,
                        "parameters": {
                            "rollout": str(rollout),
                            "stickiness": "default",
                            "groupId": name,
                        },
                    },
                )
            if flag.state is not FlagState.DISABLED:
                api.post(f"{path}/on")
        phase = next((c.flags[name].phase for c in configs.values() if name in c.flags), None)
        if phase is not None:
            try:
                api.post(
                    f"/api/admin/features/{name}/tags",
                    {"type": "simple", "value": f"phase:{phase}"},
                )
            except UnleashRefused as error:
                if error.status != 409:
                    raise
    return len(names)
