"""`rollout-dashboard healthcheck [--ready]`: the image's HEALTHCHECK and the Kubernetes
probes (the checks themselves are `app.probes.check_health`).

Exit codes: 0 healthy (one `ok: …` line on stdout); 4 a dependency is unavailable (one
line on stderr naming each, never a URL or a secret); 2 invalid settings.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from app.rollout.exit_codes import ExitCode

if TYPE_CHECKING:
    from app.settings import Settings

__all__ = ["add_healthcheck_command"]


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text[:40]!r}") from None
    if not 0 < value <= 300:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most 300 s, got {text[:40]}")
    return value


def add_healthcheck_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register `healthcheck [--ready] [--timeout SECONDS]` on the `add_subparsers()`
    result."""
    from app.probes import DEFAULT_TIMEOUT_SECONDS

    parser: argparse.ArgumentParser = subparsers.add_parser(
        "healthcheck",
        help="exit 0 when the metrics database and the flag backend answer (liveness); "
        "with --ready, the metrics source too (readiness)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument(
        "--ready", action="store_true", help="also require the metrics source (Prometheus)"
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"how long each dependency may take to answer (default {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    parser.set_defaults(run=_run_healthcheck)
    return parser


def _run_healthcheck(args: argparse.Namespace, settings: Settings) -> int:
    from app.probes import check_health

    report = check_health(settings, ready=args.ready, timeout_seconds=args.timeout)
    if report.healthy:
        print(report.reason)
        return ExitCode.DONE
    print(f"unhealthy: {report.reason}", file=sys.stderr)
    return ExitCode.UNAVAILABLE
