"""Benchmark workloads: a flag config and matching OpenMetrics backfill for N flags.

Each flag has 3 variants (`control` default, `treatment_a` rolled out, `treatment_b` by
a targeting rule) in 2 environments, scraped from `instances` instances every 15 s.

Scaled down to stay within a 2-minute run on 2 cores (the dashboard defaults are a 5 min
rate window and 30 min sparklines over 24 h of history):
- history is `minutes` long (default 4 min, not 24 h), so benchmarks use a 1 min rate
  window and a sparkline span equal to the history;
- only the evaluation counter carries the `instance` label (it is the widest family,
  and every query sums it away); the error counter and the latency histogram are per
  flag and environment, as after a recording rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.metrics_db.records import LATENCY_BUCKETS
from queries.names import MetricNames

__all__ = ["END", "ENVIRONMENTS", "VARIANTS", "Workload", "openmetrics", "write_config"]

ENVIRONMENTS = ("production", "staging")
#: variant -> (reason, evaluations per instance and interval)
VARIANTS = {
    "control": ("default", 3),
    "treatment_a": ("split", 2),
    "treatment_b": ("targeting_match", 1),
}
INTERVAL_SECONDS = 15
#: the end of the last backfilled interval: pin every query to it
END = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
_BOUNDS = [repr(float(b)) for b in LATENCY_BUCKETS] + ["+Inf"]


@dataclass(frozen=True)
class Workload:
    flags: int
    instances: int = 20
    minutes: int = 4
    #: the last scrape; a dashboard that asks at "now" needs one past the end of its run
    end: datetime = END
    interval_seconds: int = INTERVAL_SECONDS

    @property
    def start(self) -> datetime:
        return self.end - timedelta(minutes=self.minutes)

    def flag_keys(self) -> list[str]:
        return [f"bench_flag_{i:05d}" for i in range(self.flags)]

    @property
    def series(self) -> int:
        per_env = self.flags * (len(VARIANTS) * self.instances + 1 + len(_BOUNDS) + 2)
        return per_env * len(ENVIRONMENTS)


def write_config(directory: Path, flags: int) -> Path:
    """The base YAML file with `flags` flags and one override file per environment."""
    lines = ['version: "1.0.0"', "flags:"]
    for i in range(flags):
        lines += [
            f"  bench_flag_{i:05d}:",
            "    state: rollout",
            "    default_variant: control",
            "    variants: {control: 0, treatment_a: 1, treatment_b: 2}",
            "    rollout: {strategy: percentage, percentage: 25, variant: treatment_a}",
            "    targeting_rules:",
            "      - {name: staff, condition: \"user_type == 'staff'\", variant: treatment_b}",
            f"    metadata: {{phase: {i % 6 + 1}, description: 'benchmark flag {i}'}}",
        ]
    base = directory / "feature_flags.yaml"
    base.write_text("\n".join(lines) + "\n")
    for environment in ENVIRONMENTS:
        (directory / f"feature_flags_{environment}.yaml").write_text("flags: {}\n")
    return base


def openmetrics(workload: Workload, names: MetricNames = MetricNames()) -> str:  # noqa: B008
    """Cumulative counters and histogram every `interval_seconds` from `start` to `end`,
    timestamps in seconds, ending in `# EOF`. Every interval holds the same counts, so
    each variant's rate is instances * count / interval_seconds per second."""
    return "".join(_lines(workload, names))


def _lines(workload: Workload, names: MetricNames) -> Iterator[str]:
    first = int(workload.start.timestamp())
    stamps = list(range(first, int(workload.end.timestamp()) + 1, workload.interval_seconds))
    keys = workload.flag_keys()
    family = names.evaluations.removesuffix("_total")
    yield f"# TYPE {family} counter\n"
    for flag in keys:
        for environment in ENVIRONMENTS:
            for variant, (reason, count) in VARIANTS.items():
                for instance in range(workload.instances):
                    labels = (
                        f'{{{names.flag_label}="{flag}",{names.variant_label}="{variant}",'
                        f'{names.reason_label}="{reason}",{names.environment_label}='
                        f'"{environment}",instance="10.0.0.{instance}:8000"}}'
                    )
                    prefix = names.evaluations + labels
                    yield "".join(
                        f"{prefix} {n * count} {stamp}\n" for n, stamp in enumerate(stamps)
                    )
    per_interval = workload.instances * sum(count for _, count in VARIANTS.values())
    if names.errors:
        family = names.errors.removesuffix("_total")
        yield f"# TYPE {family} counter\n"
        for flag in keys:
            for environment in ENVIRONMENTS:
                prefix = (
                    f'{names.errors}{{{names.flag_label}="{flag}",'
                    f'{names.error_type_label}="timeout",{names.environment_label}="{environment}"}}'
                )
                yield "".join(f"{prefix} {n} {stamp}\n" for n, stamp in enumerate(stamps))
    if names.duration:
        # every evaluation observed at 0.0008 s: in (0.0005, 0.001]
        yield f"# TYPE {names.duration} histogram\n"
        for flag in keys:
            for environment in ENVIRONMENTS:
                base = f'{names.flag_label}="{flag}",{names.environment_label}="{environment}"'
                for n, stamp in enumerate(stamps):
                    total = n * per_interval
                    for bound in _BOUNDS:
                        value = total if bound == "+Inf" or float(bound) >= 0.001 else 0
                        yield f'{names.duration}_bucket{{{base},le="{bound}"}} {value} {stamp}\n'
                    yield f"{names.duration}_sum{{{base}}} {total * 0.0008!r} {stamp}\n"
                    yield f"{names.duration}_count{{{base}}} {total} {stamp}\n"
    yield "# EOF\n"


if __name__ == "__main__":
    # `python -m tests.bench.workloads FLAGS INSTANCES MINUTES FILE [END_EPOCH INTERVAL]`:
    # the OpenMetrics text written by a child process, so the benchmark's own memory
    # figure leaves it out.
    import sys

    flags, instances, minutes = (int(arg) for arg in sys.argv[1:4])
    extra = {}
    if len(sys.argv) > 5:
        extra = {
            "end": datetime.fromtimestamp(int(sys.argv[5]), tz=UTC),
            "interval_seconds": int(sys.argv[6]),
        }
    Path(sys.argv[4]).write_text(openmetrics(Workload(flags, instances, minutes, **extra)))
