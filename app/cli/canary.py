"""`rollout-dashboard canary`: the canary verdict for scripts and on-call terminals.

Exit codes: 0 pass, marginal or inconclusive; 1 fail (the canary is refused); 2 bad
usage; 4 no metrics source answered. With `--json`, stdout carries the canary document of
docs/design.md §6 and nothing else; notices go to stderr.

The statistics and the queries (scipy, pandas) are imported when the command runs, not
when the parser is built for another command.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TextIO

from app.cli.arguments import instant, runtime_for
from app.rollout.exit_codes import ExitCode

if TYPE_CHECKING:
    from app.analysis.canary_analysis import CanaryAnalysis
    from app.settings import Settings

__all__ = ["add_canary_command", "run_canary"]


def _window(text: str) -> timedelta:
    from app.services.canary import parse_window

    try:
        return parse_window(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def add_canary_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register `canary [--env ENV] [--window DURATION] [--json] [--at ISO]` on the
    `add_subparsers()` result; its handler is `run_canary(args, settings)`."""
    canary = subparsers.add_parser("canary", help="canary vs stable verdict")
    canary.add_argument("--env", dest="environment")
    canary.add_argument(
        "--window",
        type=_window,
        default="15m",  # a string default goes through `type` only when canary runs
        help="analysis window, e.g. 15m, 1h (default 15m)",
    )
    canary.add_argument("--json", action="store_true")
    canary.add_argument("--at", type=instant, help="as of this ISO-8601 instant (replays)")
    canary.set_defaults(run=run_canary)
    return canary  # type: ignore[no-any-return]


def run_canary(args: argparse.Namespace, settings: Settings) -> int:
    """Print the verdict; exit 1 when it is fail, 4 when no source answered."""
    from app.analysis.canary import Verdict
    from app.analysis.canary_analysis import load_canary

    opened = runtime_for(settings, args.environment, read_only=True)
    if opened is None:
        return ExitCode.USAGE
    runtime, environment = opened
    at = args.at or datetime.now(UTC)
    analysis = load_canary(
        runtime.sources.canary(),
        environment,
        args.window,
        at,
        notices=runtime.notices,
    )
    for notice in analysis.notices:
        print(f"warning: {notice}", file=sys.stderr)
    if args.json:
        print(json.dumps(analysis.report.as_json(), indent=2))
    else:
        _print_table(sys.stdout, analysis)
    if analysis.source == "none":
        return ExitCode.UNAVAILABLE
    return ExitCode.REFUSED if analysis.report.verdict is Verdict.FAIL else ExitCode.DONE


def _print_table(out: TextIO, analysis: CanaryAnalysis) -> None:
    from app.services.canary import metric_table

    minutes = analysis.window.total_seconds() / 60
    print(
        f"canary verdict: {analysis.report.verdict.upper()} "
        f"(source: {analysis.source}, window {minutes:g} min)",
        file=out,
    )
    for row in metric_table(analysis.report).to_dict("records"):
        print(
            f"{row['Metric']:<12} {row['Verdict']:<16} canary {row['Canary']:>10}  "
            f"baseline {row['Baseline']:>10}  stat {row['Statistic']:>7}  "
            f"p {row['p-value']:>8}",
            file=out,
        )
