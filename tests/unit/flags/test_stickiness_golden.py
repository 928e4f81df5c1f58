"""Stickiness golden file: 10,000 (flag, user) pairs keep the seed's bucket and variant.

`stickiness_golden.txt` was written by the seed's `bucket` and `evaluate` before any
optimisation. A change of hashing, key joining, rule order or comparison that moves a
single user to another variant fails here: users must never flip on a deploy.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from app.flags.evaluator import (
    EvaluationContext,
    EvaluationMetrics,
    FlagEvaluator,
    bucket,
    evaluate,
)
from app.flags.model import FlagDefinition

GOLDEN = Path(__file__).parent / "data" / "stickiness_golden.txt"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
USERS_PER_FLAG = 200

_RULES = [
    {"name": "staff", "condition": "user_type == 'staff'", "variant": "b", "priority": 1},
    {
        "name": "beta",
        "condition": "custom_attributes.get('beta', False) and user_type != 'staff'",
        "variant": "off",
        "priority": 5,
    },
]


def _flag_bodies() -> list[dict[str, Any]]:
    """50 flags of every shape a sticky assignment depends on."""
    variants = {"on": True, "off": False, "b": "b"}
    bodies: list[dict[str, Any]] = []
    for n, percentage in enumerate((0, 0.01, 1, 5, 10, 25, 33.33, 50, 75, 99.99, 100)):
        bodies.append({"state": "rollout", "rollout": {"percentage": percentage}})
        bodies.append(
            {
                "state": "rollout",
                "variants": variants,
                "default_variant": "off",
                "rollout": {"percentage": percentage, "variant": "b" if n % 2 else "on"},
                "targeting_rules": _RULES,
            }
        )
    schedule = [
        {"at": NOW - timedelta(days=1), "percentage": 20},
        {"at": NOW + timedelta(days=1), "percentage": 80},
    ]
    for extra in range(28):
        shape = extra % 4
        if shape == 0:
            bodies.append(
                {
                    "state": "rollout",
                    "rollout": {"strategy": "gradual", "percentage": 5, "schedule": schedule},
                }
            )
        elif shape == 1:
            bodies.append(
                {
                    "state": "rollout",
                    "rollout": {"strategy": "user_list", "user_list": ["user-3", "ü-7", ""]},
                }
            )
        elif shape == 2:
            bodies.append(
                {
                    "state": "enabled" if extra % 8 == 2 else "disabled",
                    "targeting_rules": _RULES,
                    "variants": variants,
                }
            )
        else:
            bodies.append({"state": "rollout", "rollout": {"percentage": 3 * extra + 0.5}})
    return bodies


def _flag_keys(count: int) -> list[str]:
    # Keys with separators and non-ASCII text: the hashed text is `flag:user` in UTF-8.
    odd = ["a:b", "ümlaut_flag", "flag with space", "日本", "", "x" * 300]
    return [odd[n] if n < len(odd) else f"golden_flag_{n:03d}" for n in range(count)]


def _contexts(rng: random.Random) -> list[EvaluationContext]:
    users = []
    for n in range(USERS_PER_FLAG):
        kind = n % 5
        if kind == 0:
            user_id = f"user-{n}"
        elif kind == 1:
            user_id = f"{rng.getrandbits(128):032x}"
        elif kind == 2:
            user_id = f"ü-{n}-{rng.getrandbits(16)}"
        elif kind == 3:
            user_id = f"c:{n}:{rng.getrandbits(32)}"
        else:
            user_id = str(rng.getrandbits(40))
        users.append(
            EvaluationContext(
                user_id,
                user_type=rng.choice(["staff", "customer", ""]),
                environment="production",
                custom_attributes={"beta": rng.random() < 0.2},
            )
        )
    users[0] = EvaluationContext("")
    return users


def golden_lines() -> list[str]:
    """`flag-index user-index bucket variant reason` for each of the 10,000 pairs."""
    rng = random.Random(20260101)
    bodies = _flag_bodies()
    keys = _flag_keys(len(bodies))
    lines = []
    for index, (key, body) in enumerate(zip(keys, bodies, strict=True)):
        flag = FlagDefinition.model_validate({"key": key, **body})
        for user_index, context in enumerate(_contexts(rng)):
            result = evaluate(flag, context, NOW)
            position = bucket(key, context.user_id)
            lines.append(
                f"{index} {user_index} {position!r} {result.variant} {result.reason.value}"
            )
    return lines


def test_every_pair_keeps_the_seeds_bucket_and_variant() -> None:
    expected = GOLDEN.read_text(encoding="utf-8").splitlines()
    actual = golden_lines()
    assert len(expected) == len(actual) == 10_000
    changed = [(want, got) for want, got in zip(expected, actual, strict=True) if want != got]
    assert not changed, f"{len(changed)} assignments changed, first: {changed[:3]}"


def test_the_evaluator_with_metrics_assigns_as_evaluate_does(tmp_path: Path) -> None:
    """The service path (config loaded from a file, metrics on) gives the golden variants."""
    bodies = _flag_bodies()
    keys = _flag_keys(len(bodies))
    plain = range(6, len(bodies))  # keys the loader accepts in a file
    flags = {keys[n]: json.loads(json.dumps(bodies[n], default=str)) for n in plain}
    path = tmp_path / "feature_flags.yaml"
    path.write_text(json.dumps({"version": "1", "flags": flags}), encoding="utf-8")
    evaluator = FlagEvaluator(
        path, "production", EvaluationMetrics(CollectorRegistry()), clock=lambda: NOW
    )
    rng = random.Random(20260101)
    expected = GOLDEN.read_text(encoding="utf-8").splitlines()
    checked = 0
    for index in range(len(bodies)):
        contexts = _contexts(rng)
        if index not in plain:
            continue
        for user_index, context in enumerate(contexts):
            _, _, _, variant, reason = expected[index * USERS_PER_FLAG + user_index].split()
            result = evaluator.evaluate(keys[index], context)
            assert (result.variant, result.reason.value) == (variant, reason), (index, user_index)
            checked += 1
    assert checked == len(plain) * USERS_PER_FLAG
