"""How an Unleash feature maps onto the dashboard's flag model, as pure functions over
the JSON Unleash's Admin API returns (`POST /api/admin/features-batch/export`).

A feature in an environment is *writable* only when the mapping is exact: exactly one
`flexibleRollout` strategy, enabled, without constraints or segments, whose `rollout` is
a whole number 0..100 written as a string. It then maps to:

- environment on, rollout 100 → state `enabled` (fully released: an emergency rollback
  leaves it alone, as it does an enabled flag of the yaml backend);
- environment on, rollout 0..99 → state `rollout` at that percentage;
- environment off → state `disabled`, the rollout kept in `rollout.percentage`.

Anything else is *read-only* with the reason (`read_only_reason`): the dashboard never
guesses what a second strategy, a constraint or a rollout of "150" means. A read-only
feature is still shown: `disabled` when its environment is off, otherwise `rollout` at
its single flexibleRollout's percentage when that one parses within 0..100 (constraints
or segments then narrow who gets it, as the reason says) and `enabled` otherwise.

Each flag's version token records what a decision on it is based on:
`on|<strategy id>|<rollout>|<hash of everything else>` (`off|-|-|…` without a strategy):
the writer tests exactly that rollout in its JSON Patch (compare-and-set).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from app.flags.model import FLAG_KEY, FlagDefinition, FlagMetadata, FlagState, Rollout

__all__ = [
    "ROLLOUT_STRATEGY",
    "ExportedFeature",
    "MappedFlag",
    "VersionBasis",
    "admin_feature",
    "exported_features",
    "feature_ui_url",
    "map_feature",
    "parse_version",
    "phase_of_tags",
    "read_only_reason",
    "rollout_percentage",
    "version_token",
]

ROLLOUT_STRATEGY = "flexibleRollout"
_WHOLE = re.compile(r"(0|[1-9][0-9]{0,2})")
_PHASE_TAG = re.compile(r"phase:([1-6])")
_STRATEGY_KEYS = ("id", "name", "title", "constraints", "variants", "segments", "disabled")


@dataclass(frozen=True)
class ExportedFeature:
    """One feature in one environment, as the export gives it."""

    name: str
    description: str
    enabled: bool
    strategies: tuple[Mapping[str, Any], ...]
    tags: tuple[tuple[str, str], ...] = ()  # (type, value)
    dependencies: tuple[str, ...] = ()  # parent features


@dataclass(frozen=True)
class MappedFlag:
    """A feature as the dashboard sees it: its definition, version and (for a feature
    the dashboard will not change) why not."""

    definition: FlagDefinition
    version: str
    read_only: str | None = None
    strategy_id: str | None = None
    rollout: str | None = None  # the strategy's rollout string, as stored


@dataclass(frozen=True)
class VersionBasis:
    """What a version token says the decision was based on."""

    enabled: bool
    strategy_id: str | None
    rollout: str | None


def exported_features(export: Mapping[str, Any]) -> list[ExportedFeature]:
    """The features of one environment's export, in the export's order. A feature with
    no entry for the environment counts as off, without strategies."""
    strategies: dict[str, list[Mapping[str, Any]]] = {}
    for strategy in export.get("featureStrategies") or ():
        strategies.setdefault(str(strategy.get("featureName")), []).append(strategy)
    enabled = {
        str(entry.get("featureName")): bool(entry.get("enabled"))
        for entry in export.get("featureEnvironments") or ()
    }
    tags: dict[str, list[tuple[str, str]]] = {}
    for tag in export.get("featureTags") or ():
        tags.setdefault(str(tag.get("featureName")), []).append(
            (str(tag.get("tagType", "")), str(tag.get("tagValue", "")))
        )
    parents: dict[str, list[str]] = {}
    for entry in export.get("dependencies") or ():
        parents[str(entry.get("feature"))] = [
            str(parent.get("feature")) for parent in entry.get("dependencies") or ()
        ]
    return [
        ExportedFeature(
            name=str(feature["name"]),
            description=str(feature.get("description") or ""),
            enabled=enabled.get(str(feature["name"]), False),
            strategies=tuple(
                sorted(
                    strategies.get(str(feature["name"]), ()),
                    key=lambda s: (int(s.get("sortOrder") or 0), str(s.get("id"))),
                )
            ),
            tags=tuple(tags.get(str(feature["name"]), ())),
            dependencies=tuple(parents.get(str(feature["name"]), ())),
        )
        for feature in export.get("features") or ()
        if not feature.get("archived")
    ]


def admin_feature(
    body: Mapping[str, Any], environment: str, tags: Sequence[Mapping[str, Any]]
) -> ExportedFeature:
    """One feature from `GET /api/admin/projects/{project}/features/{name}` and its
    `GET /api/admin/features/{name}/tags`, as the export would give it."""
    entry: Mapping[str, Any] = next(
        (env for env in body.get("environments") or () if env.get("name") == environment), {}
    )
    return ExportedFeature(
        name=str(body["name"]),
        description=str(body.get("description") or ""),
        enabled=bool(entry.get("enabled")),
        strategies=tuple(
            sorted(
                entry.get("strategies") or (),
                key=lambda s: (int(s.get("sortOrder") or 0), str(s.get("id"))),
            )
        ),
        tags=tuple((str(tag.get("type", "")), str(tag.get("value", ""))) for tag in tags),
        dependencies=tuple(str(dep.get("feature")) for dep in body.get("dependencies") or ()),
    )


def rollout_percentage(rollout: object) -> int | None:
    """The rollout as a whole percentage 0..100, or None when it is not exactly one
    (a number instead of a string, "12.5", "150", "05", "")."""
    if not isinstance(rollout, str) or not _WHOLE.fullmatch(rollout):
        return None
    value = int(rollout)
    return value if value <= 100 else None


def read_only_reason(feature: ExportedFeature) -> str | None:
    """Why the dashboard must not change `feature` (None: it maps exactly)."""
    if not FLAG_KEY.fullmatch(feature.name):
        return "its name is not a key the dashboard accepts"
    if not feature.strategies:
        return (
            "it has no flexibleRollout strategy in this environment "
            "(turning it on would make Unleash add a 100 % rollout)"
        )
    if len(feature.strategies) > 1:
        names = ", ".join(str(s.get("name")) for s in feature.strategies)
        return f"it has {len(feature.strategies)} strategies ({names}); only one can be mapped"
    (strategy,) = feature.strategies
    if strategy.get("name") != ROLLOUT_STRATEGY:
        return f"its strategy is {strategy.get('name')!s}, not flexibleRollout"
    if strategy.get("disabled"):
        return "its flexibleRollout strategy is disabled"
    if strategy.get("constraints"):
        return "its strategy has constraints (who gets it is not a plain percentage)"
    if strategy.get("segments"):
        return "its strategy uses segments (who gets it is not a plain percentage)"
    rollout = (strategy.get("parameters") or {}).get("rollout")
    if rollout_percentage(rollout) is None:
        shown = json.dumps(rollout)[:40]
        return f"its rollout {shown} is not a whole percentage within 0..100"
    return None


def phase_of_tags(tags: Sequence[tuple[str, str]]) -> int | None:
    """The phase a `phase:N` tag (any tag type, N 1..6) gives; None without one."""
    for _, value in tags:
        found = _PHASE_TAG.fullmatch(value.strip())
        if found:
            return int(found.group(1))
    return None


def version_token(feature: ExportedFeature) -> str:
    """`on|<strategy id>|<rollout>|<hash>`: the switch, the one strategy's id and its
    rollout string, and a hash of everything else the mapping reads."""
    state = "on" if feature.enabled else "off"
    strategy = feature.strategies[0] if len(feature.strategies) == 1 else None
    strategy_id = str(strategy.get("id")) if strategy is not None else "-"
    rollout = (strategy.get("parameters") or {}).get("rollout") if strategy is not None else None
    rollout_text = rollout if isinstance(rollout, str) and "|" not in rollout else "-"
    rest = json.dumps(
        {
            # The same keys whichever call the feature came from (the export adds
            # featureName, a feature read adds sortOrder), in a fixed order.
            "strategies": sorted(
                (
                    {
                        **{key: strategy.get(key) for key in _STRATEGY_KEYS},
                        "parameters": {
                            k: v
                            for k, v in (strategy.get("parameters") or {}).items()
                            if k != "rollout"
                        },
                    }
                    for strategy in feature.strategies
                ),
                key=lambda body: str(body["id"]),
            ),
            "rollout": None if rollout_text != "-" else rollout,
            "tags": sorted(feature.tags),
            "dependencies": sorted(feature.dependencies),
            "description": feature.description,
        },
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha256(rest.encode()).hexdigest()[:12]
    return f"{state}|{strategy_id}|{rollout_text}|{digest}"


def parse_version(token: str) -> VersionBasis | None:
    """What `version_token` recorded; None for a token it did not make."""
    parts = token.split("|")
    if len(parts) != 4 or parts[0] not in ("on", "off"):
        return None
    return VersionBasis(
        enabled=parts[0] == "on",
        strategy_id=None if parts[1] == "-" else parts[1],
        rollout=None if parts[2] == "-" else parts[2],
    )


def map_feature(feature: ExportedFeature, local: FlagMetadata | None = None) -> MappedFlag:
    """`feature` as a flag definition, with its version and, if it is read-only, why.
    Unleash wins over `local` (the metadata file) where it has a value: a `phase:N`
    tag, dependencies, a description; `owner` comes from `local` only."""
    reason = read_only_reason(feature)
    strategy = feature.strategies[0] if len(feature.strategies) == 1 else None
    parameters = (strategy.get("parameters") or {}) if strategy is not None else {}
    rollout_raw = parameters.get("rollout")
    percentage = rollout_percentage(rollout_raw) if strategy is not None else None
    if not feature.enabled:
        state = FlagState.DISABLED
    elif percentage is None or percentage == 100:
        state = FlagState.ENABLED
    else:
        state = FlagState.ROLLOUT
    variants, rollout_variant = _variants(strategy)
    local = local or FlagMetadata()
    metadata = FlagMetadata(
        phase=phase_of_tags(feature.tags) or local.phase,
        description=feature.description or local.description,
        dependencies=feature.dependencies or local.dependencies,
        owner=local.owner,
    )
    definition = FlagDefinition(
        key=feature.name,
        state=state,
        default_variant="off",
        variants=variants,
        rollout=Rollout(
            percentage=float(percentage or 0),
            sticky=parameters.get("stickiness") != "random",
            variant=rollout_variant,
            stickiness=str(parameters.get("stickiness") or "") if strategy is not None else "",
        ),
        metadata=metadata,
    )
    return MappedFlag(
        definition=definition,
        version=version_token(feature),
        read_only=reason,
        strategy_id=str(strategy.get("id")) if strategy is not None else None,
        rollout=rollout_raw if isinstance(rollout_raw, str) else None,
    )


def _variants(strategy: Mapping[str, Any] | None) -> tuple[dict[str, Any], str]:
    """The strategy's variants as the model's `variants` (each with its share of the
    users who get the feature, in %, and its payload) and the variant those users are
    shown as getting (the heaviest); `on`/`off` without variants."""
    listed = list((strategy or {}).get("variants") or ())
    if not listed:
        return {"on": True, "off": False}, "on"
    variants: dict[str, Any] = {"off": False}
    for variant in listed:
        payload = variant.get("payload")
        variants[str(variant.get("name"))] = {
            "weight": float(variant.get("weight") or 0) / 10,
            "payload": payload.get("value") if isinstance(payload, dict) else None,
        }
    heaviest = max(listed, key=lambda v: (float(v.get("weight") or 0), str(v.get("name"))))
    return variants, str(heaviest.get("name"))


def feature_ui_url(server_url: str, project: str, feature: str) -> str:
    """The feature's page in the Unleash admin UI ('…/projects/default/features/checkout'),
    each name escaped as one path segment."""
    segments = (quote(project, safe=""), quote(feature, safe=""))
    return f"{server_url.rstrip('/')}/projects/{segments[0]}/features/{segments[1]}"
