"""How the commands print: one JSON document, or what an action did in words."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.rollout.action_model import ActionResult
    from app.settings import Settings

__all__ = ["print_configuration", "print_json", "print_result"]


def print_json(document: Any) -> None:
    """`document` as the one JSON document on stdout."""
    json.dump(document, sys.stdout, indent=2, allow_nan=False)
    sys.stdout.write("\n")


def print_result(result: ActionResult) -> None:
    """The diff, the guard report and what was written, as `advance` prints them."""
    plan = result.plan
    if plan is not None:
        for transition in plan.transitions:
            print(transition.diff)
        for guard in plan.guards:
            mark = "PASS" if guard.passed else "FAIL"
            print(f"  {mark} {guard.label:<13} {guard.detail}")
        for flag, reason in plan.skipped.items():
            print(f"skipped (read-only): {flag}: {reason}")
    if result.per_flag is not None and not result.applied:
        for entry in result.audit:
            said = "applied" if entry.outcome == "applied" else f"{entry.outcome}: {entry.detail}"
            print(f"  {entry.flag}: {said} (audit {entry.id})")
    if result.applied:
        ids = ", ".join(
            f"{entry.id}: {entry.detail}" if entry.detail else entry.id for entry in result.audit
        )
        print(
            f"applied (audit {ids})" + (" — replayed: this key was used" if result.replayed else "")
        )
    elif plan is not None and plan.request.dry_run:
        print("dry run: nothing written")


def print_configuration(settings: Settings, process: str) -> None:
    """What a starting `serve` or `autopilot` runs on, one line per item on stdout (JSON
    objects with ROLLOUT_LOG_FORMAT=json); credentials masked (`effective_configuration`)."""
    from app.logs import say
    from app.settings import effective_configuration

    log_format = str(settings.log_format)
    for name, value in effective_configuration(settings):
        say(
            f"{process} configuration: {name}: {value}",
            log_format=log_format,
            setting=name,
            value=value,
        )
