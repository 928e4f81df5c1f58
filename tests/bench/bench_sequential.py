"""The autopilot's data gates on simulated traffic, through the real decision code
(docs/design.md §8): per tick, `app.evidence.gates.judge_gates` on the slots since the
step began (`fired_rows`, the same e-processes without their words), then
`judge_gates`, `app.rollout.guards.evaluate_guards` and `app.autopilot.decide.decide`
for every simulated plan-day whose gates fired, and every 20 minutes for every one: the
rule must act exactly where the gates fired. Beside it, the rule before issue
21 on the same traffic: fixed-α z-tests on a sliding 5-minute window every tick (error
rate against the limit; treatment worse than control at p < 0.01 and a chi-square sample
ratio mismatch at p < 0.001, both acting when two ticks in a row saw them).

Traffic: Poisson evaluations per 30 s slot at `rate` per second, `share` of them on the
treatment, binomial failures on the treatment's evaluations, in the evaluations with
reason `error` (so the per-variant gates apply). A/A: both arms fail at the same rate,
0.2 % or 0.9 % (limit 1 %), at 2, 20 or 200 evaluations/s and 1, 25 or 50 % share, for
24 h at one step: a false action is any action on such a day.

`python -m tests.bench.bench_sequential [plan-days per A/A cell] [delay replicates]`
(defaults 10 and 40: 180 A/A plan-days and the four regressions, about 4 minutes on 2
cores). The figures are in docs/performance.md and the closing note of issue 21.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
from scipy import stats
from scipy.stats import beta

from app.autopilot.decide import Move, PlanEvidence, decide
from app.autopilot.model import RolloutPlan
from app.evidence.gates import FlagGates, GateSlots, fired_rows, judge_gates
from app.flags.model import FlagState
from app.rollout.guards import GuardInputs, GuardPolicy, evaluate_guards

Array = npt.NDArray[np.float64]
SLOT = 30.0
LIMIT = 0.01
POLICY = GuardPolicy(max_error_rate=LIMIT, min_soak=timedelta(minutes=30))
SETTINGS = POLICY.gate_settings()
BEGAN = datetime(2026, 12, 7, tzinfo=UTC)
ACTS = {Move.ROLLBACK, Move.KILL, Move.PAUSE}


@dataclass(frozen=True)
class Traffic:
    """Per plan-day (rows) and slot (columns): the treatment's and control's evaluations
    and failures."""

    treated: Array
    treated_bad: Array
    control: Array
    control_bad: Array

    @property
    def days(self) -> int:
        return self.treated.shape[0]

    def gate_slots(self) -> GateSlots:
        ends = BEGAN.timestamp() + SLOT * np.arange(1, self.treated.shape[1] + 1)
        return GateSlots(
            ends=ends,
            failed=self.treated_bad + self.control_bad,
            evaluated=self.treated + self.control,
            treatment=(self.treated_bad, self.treated),
            control=(self.control_bad, self.control),
            split=(self.treated, self.treated + self.control),
        )


def simulate(
    days: int,
    rate: float,
    share: float,
    p_treatment: float,
    p_control: float,
    hours: float,
    seed: int,
    change_at: float | None = None,
    p_after: float | None = None,
) -> Traffic:
    rng = np.random.default_rng(seed)
    slots = int(hours * 3600 / SLOT)
    treated = rng.poisson(rate * share * SLOT, size=(days, slots)).astype(float)
    control = rng.poisson(rate * (1 - share) * SLOT, size=(days, slots)).astype(float)
    p_t = np.full(slots, p_treatment)
    if change_at is not None and p_after is not None:
        p_t[int(change_at / SLOT) :] = p_after
    return Traffic(
        treated,
        rng.binomial(treated.astype(int), p_t).astype(float),
        control,
        rng.binomial(control.astype(int), p_control).astype(float),
    )


def _plan(share: float) -> RolloutPlan:
    percentage = 100 * share
    return RolloutPlan(
        flag="sim",
        environment="production",
        steps=(percentage, 100.0),
        soak=timedelta(minutes=30),
        created_by="bench",
        created_at=BEGAN,
        expected_state=FlagState.ROLLOUT,
        expected_percentage=percentage,
        stop_at=percentage,  # holds at this step: watches for failures all day
    )


def _decision(plan: RolloutPlan, gates: FlagGates, now: datetime) -> Move:
    """What the real guards and rule do with one plan-day's gates at `now`."""
    inputs = GuardInputs(
        now=now,
        configured_percentage=plan.expected_percentage,
        treatment="on",
        baseline="off",
        source="simulation",
        newest_sample=now,
        variants=None,
        at_step_since=BEGAN,
        instance_versions={"sim": "v1"},
        current_config_version="v1",
        gates=gates,
        window=gates.window,
    )
    seen = PlanEvidence(
        now=now,
        state=FlagState.ROLLOUT,
        percentage=plan.expected_percentage,
        guards=evaluate_guards(inputs, POLICY),
        variants=None,
        treatment="on",
        baseline="off",
        window=timedelta(minutes=5),
        at_step_since=BEGAN,
    )
    return decide(plan, seen).move


def sequential_first_actions(traffic: Traffic, share: float) -> Array:
    """Per plan-day, the seconds into the step of the first action of the real rule
    (inf: none)."""
    plan = _plan(share)
    slots = traffic.gate_slots()
    first = np.full(traffic.days, np.inf)
    began = BEGAN.timestamp()
    for k in range(1, traffic.treated.shape[1] + 1):
        now = began + k * SLOT
        fired = fired_rows(slots, began, now, share, SETTINGS) & ~np.isfinite(first)
        audit_all = k % 40 == 0  # every 20 minutes: every day through the whole rule
        if not fired.any() and not audit_all:
            continue
        judged = judge_gates(slots, began, now, share, SETTINGS, "since the step began")
        when = datetime.fromtimestamp(now, tz=UTC)
        for day, gates in enumerate(judged):
            if gates is None or np.isfinite(first[day]) or not (fired[day] or audit_all):
                continue
            move = _decision(plan, gates, when)
            if move in ACTS:
                first[day] = k * SLOT
            if (move in ACTS) != bool(fired[day]):
                raise AssertionError(f"the gates {'fired' if fired[day] else 'held'}: {move}")
    return first


def old_rule_first_actions(traffic: Traffic, share: float) -> Array:
    """Per plan-day, the seconds into the step of the first action of the rule before
    issue 21, on a sliding 5-minute window each tick."""
    window = int(300 / SLOT)

    def sliding(counts: Array) -> Array:
        running = np.concatenate([np.zeros((counts.shape[0], 1)), counts.cumsum(axis=1)], axis=1)
        return running[:, window:] - running[:, :-window]

    nt, xt = sliding(traffic.treated), sliding(traffic.treated_bad)
    nc, xc = sliding(traffic.control), sliding(traffic.control_bad)
    total, bad = nt + nc, xt + xc
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = bad / total
        z = (ratio - LIMIT) / np.sqrt(LIMIT * (1 - LIMIT) / total)
        strong = (ratio > LIMIT) & (stats.norm.sf(z) < 0.01)
        pooled = (xt + xc) / total
        se = np.sqrt(pooled * (1 - pooled) * (1 / nt + 1 / nc))
        z2 = (xt / nt - xc / nc) / se
        worse = (stats.norm.sf(z2) < 0.01) & (ratio <= LIMIT)
        expected_t, expected_c = total * share, total * (1 - share)
        chi2 = (nt - expected_t) ** 2 / expected_t + (nc - expected_c) ** 2 / expected_c
        srm = stats.chi2.sf(chi2, 1) < 0.001
    weak = np.nan_to_num(worse | srm).astype(bool)
    confirmed = weak[:, 1:] & weak[:, :-1]
    acts = np.nan_to_num(strong).astype(bool)
    acts[:, 1:] |= confirmed
    first = np.full(traffic.days, np.inf)
    hit = acts.any(axis=1)
    first[hit] = (acts[hit].argmax(axis=1) + window) * SLOT
    return first


def clopper_pearson(hits: int, n: int, level: float = 0.95) -> tuple[float, float]:
    low = 0.0 if hits == 0 else float(beta.ppf((1 - level) / 2, hits, n - hits + 1))
    high = 1.0 if hits == n else float(beta.ppf(1 - (1 - level) / 2, hits + 1, n - hits))
    return low, high


def _share(hits: int, n: int) -> str:
    low, high = clopper_pearson(hits, n)
    return f"{hits}/{n} = {hits / n:.2%} (95 % interval {low:.2%} … {high:.2%})"


def main(days: int, replicates: int) -> None:
    started = time.monotonic()
    new_false = old_false = total = 0
    print("| A/A cell | sequential (this rule) | fixed-α sliding window (before) |")
    print("|---|---|---|")
    for p in (0.002, 0.009):
        for rate in (2, 20, 200):
            for share in (0.01, 0.25, 0.5):
                seed = int(rate * 1000 + share * 100 + p * 1e4)
                traffic = simulate(days, rate, share, p, p, 24, seed)
                new = int(np.isfinite(sequential_first_actions(traffic, share)).sum())
                old = int(np.isfinite(old_rule_first_actions(traffic, share)).sum())
                new_false, old_false, total = new_false + new, old_false + old, total + days
                print(f"| {p:.1%} errors, {rate}/s, {share:.0%} | {new}/{days} | {old}/{days} |")
    print(f"\nA/A false actions per plan-day: sequential {_share(new_false, total)}; ")
    print(f"before: {_share(old_false, total)}\n")
    cases = (
        ("0.5 → 5 % at 25 %, 20/s, from the step's start", 20, 0.25, 0.05, None, 1.0),
        ("0.5 → 20 % at 25 %, 2/s, from the step's start", 2, 0.25, 0.20, None, 1.0),
        ("0.5 → 5 % at 25 %, 20/s, starting 3 h into the step", 20, 0.25, 0.05, 3 * 3600.0, 4.0),
        ("gross: 0.5 → 25 % at 25 %, 200/s, from the step's start", 200, 0.25, 0.25, None, 0.25),
    )
    print("| regression | sequential median / p90 | before median / p90 |")
    print("|---|---|---|")
    for words, rate, share, bad, change, hours in cases:
        if change is None:
            traffic = simulate(replicates, rate, share, bad, 0.005, hours, 7)
        else:
            traffic = simulate(replicates, rate, share, 0.005, 0.005, hours, 7, change, bad)
        row = [words]
        for rule in (sequential_first_actions, old_rule_first_actions):
            found = rule(traffic, share)
            if change is not None:  # an action before the change is a false one: not a delay
                found = np.where(found >= change, found, np.inf)
            delay = (found - (change or 0.0)) / 60
            median, p90 = np.median(delay), np.percentile(delay, 90)
            row.append(f"{median:.1f} / {p90:.1f} min")
        print("| " + " | ".join(row) + " |")
    print(f"\n({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    arguments = [int(a) for a in sys.argv[1:3]]
    main(*(arguments + [10, 40][len(arguments) :]))
