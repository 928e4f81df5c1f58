"""A guardrails file (`ROLLOUT_GUARDRAILS_FILE`) and what each guardrail says.

```yaml
guardrails:
  - name: http_5xx
    description: HTTP 5xx ratio of the requests served under each variant
    bad: >-
      sum by (feature_flag_key, variant) (increase(http_requests_total{code=~"5..",
      environment="{environment}"}[{range}]))
    total: >-
      sum by (feature_flag_key, variant)
      (increase(http_requests_total{environment="{environment}"}[{range}]))
    flag_label: feature_flag_key
    variant_label: variant
    max_increase: 0.01   # treatment may exceed control by at most 1 point
    mode: gate           # or dry_run: judged and recorded, never acts
```

Beyond that form: `max_ratio_increase: 0.2` (a relative limit: the treatment's ratio at
most 1.2 × the control's) instead of `max_increase`, and `flags: [checkout, search]` to
judge only some flags (all by default). The file is read through the YAML limits of
`app.flags.yaml_limits`; every mistake is named with the guardrail it is in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from app.errors import RolloutError
from app.flags.yaml_limits import check_text, read_text
from app.quoting import quoted

__all__ = [
    "Guardrail",
    "GuardrailMode",
    "GuardrailsInvalid",
    "load_guardrails",
    "parse_guardrails",
    "read_guardrails",
]

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_KNOWN = frozenset(
    {
        "name",
        "description",
        "bad",
        "total",
        "flag_label",
        "variant_label",
        "max_increase",
        "max_ratio_increase",
        "mode",
        "flags",
    }
)
#: the most guardrails a file may hold: each costs two queries per environment and tick
MOST_GUARDRAILS = 20
_QUERY_LENGTH = 4000


class GuardrailsInvalid(RolloutError, ValueError):
    """A guardrails file that cannot be used, with what is wrong and where."""


class GuardrailMode(StrEnum):
    GATE = "gate"  # blocks advances, triggers a plan's failure action
    DRY_RUN = "dry_run"  # judged and recorded ("would have rolled back"), never acts


@dataclass(frozen=True)
class Guardrail:
    """One metric of the service judged per flag: the treatment's `bad` / `total` against
    the control's, at most `limit` worse (points, or relative when `relative`)."""

    name: str
    bad: str
    total: str
    flag_label: str
    variant_label: str
    limit: float
    relative: bool = False
    mode: GuardrailMode = GuardrailMode.GATE
    description: str = ""
    flags: frozenset[str] = frozenset()  # empty: every flag

    def judges(self, flag: str) -> bool:
        return not self.flags or flag in self.flags

    @property
    def acts(self) -> bool:
        return self.mode is GuardrailMode.GATE

    @property
    def limit_words(self) -> str:
        """'at most +1.00 pt over control', 'at most 20 % over control'."""
        if self.relative:
            return f"at most {100 * self.limit:g} % over control"
        return f"at most +{100 * self.limit:.2f} pt over control"


def read_guardrails(path: Path | None) -> tuple[tuple[Guardrail, ...], str]:
    """The guardrails of the file at `path` (none when unset) and, when it cannot be
    used, why (the guardrails are then none: advances wait, nothing rolls back on them).
    Read again only when the file changes."""
    if path is None:
        return (), ""
    try:
        seen = path.stat()
    except OSError as error:
        return (), f"guardrails file {path}: {error.strerror or error}"
    return _read(path, seen.st_mtime_ns, seen.st_size)


@lru_cache(maxsize=8)
def _read(path: Path, _mtime: int, _size: int) -> tuple[tuple[Guardrail, ...], str]:
    try:
        return load_guardrails(path), ""
    except GuardrailsInvalid as error:
        return (), str(error)


def load_guardrails(path: Path) -> tuple[Guardrail, ...]:
    """The guardrails of the file at `path`; GuardrailsInvalid naming the file and the
    mistake (a missing file included)."""
    try:
        text = read_text(path)
    except OSError as error:
        raise GuardrailsInvalid(f"guardrails file {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise GuardrailsInvalid(f"guardrails file {path}: {error}") from None
    try:
        return parse_guardrails(text)
    except GuardrailsInvalid as error:
        raise GuardrailsInvalid(f"guardrails file {path}: {error}") from None


def parse_guardrails(text: str) -> tuple[Guardrail, ...]:
    """The guardrails of a file's text (the YAML limits first); GuardrailsInvalid."""
    try:
        document = yaml.safe_load(check_text(text))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise GuardrailsInvalid(f"not valid YAML{where}") from None
    except ValueError as error:
        raise GuardrailsInvalid(str(error)) from None
    if document is None:
        return ()
    if not isinstance(document, Mapping) or set(document) - {"guardrails"}:
        raise GuardrailsInvalid("the file must be a mapping with one key, guardrails")
    items = document.get("guardrails")
    items = [] if items is None else items
    if not isinstance(items, list):
        raise GuardrailsInvalid("guardrails must be a list")
    if len(items) > MOST_GUARDRAILS:
        raise GuardrailsInvalid(f"at most {MOST_GUARDRAILS} guardrails, found {len(items)}")
    parsed = [_guardrail(index, item) for index, item in enumerate(items, start=1)]
    names = [g.name for g in parsed]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise GuardrailsInvalid(f"guardrail names must be unique: {', '.join(twice)}")
    return tuple(parsed)


def _guardrail(index: int, item: object) -> Guardrail:
    where = f"guardrail {index}"
    if not isinstance(item, Mapping):
        raise GuardrailsInvalid(f"{where}: must be a mapping")
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise GuardrailsInvalid(
            f"{where}: name {quoted(name)} must be lower-case letters, digits and _ "
            "(starting with a letter)"
        )
    where = f"guardrail {name}"
    unknown = sorted(str(key) for key in item if key not in _KNOWN)
    if unknown:
        raise GuardrailsInvalid(
            f"{where}: unknown keys {', '.join(quoted(k) for k in unknown)} "
            f"(known: {', '.join(sorted(_KNOWN))})"
        )
    bad, total = _query(where, item, "bad"), _query(where, item, "total")
    labels = [_label(where, item, key) for key in ("flag_label", "variant_label")]
    limit, relative = _limit(where, item)
    mode = item.get("mode", GuardrailMode.GATE.value)
    if mode not in {m.value for m in GuardrailMode}:
        raise GuardrailsInvalid(f"{where}: mode {quoted(mode)} must be gate or dry_run")
    flags = item.get("flags", [])
    if not isinstance(flags, list) or not all(isinstance(f, str) and f for f in flags):
        raise GuardrailsInvalid(f"{where}: flags must be a list of flag keys")
    description = item.get("description", "")
    if not isinstance(description, str):
        raise GuardrailsInvalid(f"{where}: description must be text")
    return Guardrail(
        name=name,
        bad=bad,
        total=total,
        flag_label=labels[0],
        variant_label=labels[1],
        limit=limit,
        relative=relative,
        mode=GuardrailMode(mode),
        description=description.strip(),
        flags=frozenset(flags),
    )


def _query(where: str, item: Mapping[str, Any], key: str) -> str:
    query = item.get(key)
    if not isinstance(query, str) or not query.strip():
        raise GuardrailsInvalid(f"{where}: {key} must be a PromQL query")
    if len(query) > _QUERY_LENGTH:
        raise GuardrailsInvalid(f"{where}: {key} is longer than {_QUERY_LENGTH} characters")
    if "{range}" not in query:
        raise GuardrailsInvalid(
            f"{where}: {key} must count over {{range}} (e.g. increase(x[{{range}}])): the "
            "guardrail is read per slot of the evidence grid"
        )
    return query.strip()


def _label(where: str, item: Mapping[str, Any], key: str) -> str:
    label = item.get(key)
    if not isinstance(label, str) or not _LABEL.match(label):
        raise GuardrailsInvalid(f"{where}: {key} must be a Prometheus label name")
    return label


def _limit(where: str, item: Mapping[str, Any]) -> tuple[float, bool]:
    given = [key for key in ("max_increase", "max_ratio_increase") if key in item]
    if len(given) != 1:
        raise GuardrailsInvalid(
            f"{where}: give exactly one of max_increase (points, 0.01 = 1 point) or "
            "max_ratio_increase (relative, 0.2 = 20 % over control)"
        )
    value = item[given[0]]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GuardrailsInvalid(f"{where}: {given[0]} must be a number")
    top = 1.0 if given[0] == "max_increase" else 100.0
    if not 0 <= float(value) < top:
        raise GuardrailsInvalid(f"{where}: {given[0]} must be at least 0 and below {top:g}")
    return float(value), given[0] == "max_ratio_increase"
