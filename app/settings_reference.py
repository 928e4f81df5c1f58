"""docs/configuration.md, written from the settings model (`app.settings.Settings`).

Run `python -m app.settings_reference` after changing a setting: it rewrites the file.
`python -m app.settings_reference --check` exits 1 when the file is not what the model
gives (`tests/unit/test_docs.py` does the same).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from enum import Enum
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt, MinLen
from pydantic.fields import FieldInfo

from app.settings import SECRET_FILE_SETTINGS, Settings, WebhookKind

__all__ = ["REFERENCE", "REGENERATE", "reference"]

REFERENCE = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
REGENERATE = "uv run python -m app.settings_reference"

_HEADER = """\
# Configuration reference

<!-- Generated from app/settings.py by `{regenerate}`: do not edit by hand.
     Change a setting's description there, then run that command. -->

Every setting is an environment variable `ROLLOUT_<NAME>`, or the key `<name>` (lower
case) of the `[rollout]` table in `.streamlit/secrets.toml` (see
`.streamlit/secrets.toml.example`); the environment wins. Settings are read once per
process: restart `serve` and `autopilot` after changing one.

**Secrets** are never shown on a page or logged, and each may instead be read from a file
(a mounted Kubernetes or compose secret):
{secret_files},
and `ROLLOUT_WEBHOOK_URL_<NAME>_FILE` for one webhook's URL. The file's content without its
trailing newline is the value. Setting both the variable and its `_FILE`, or naming a
file that cannot be read, stops every command with exit 2 naming the variable, never the
content. Only secrets are read from a file: the `_FILE` form of any other setting is
refused the same way. `serve` also reads Streamlit's cookie secret from a file named by
`STREAMLIT_SERVER_COOKIE_SECRET_FILE` (see [production.md](production.md)).

**A value that cannot be used** (out of the range below, NaN or infinite, a Prometheus
URL that is not `http(s)://host`, a database URL SQLAlchemy cannot read, roles that are
not JSON) stops every command with exit 2 and one line per setting, and every page shows
the same list instead of the dashboard; nothing is read or written. A URL is quoted with
its credentials replaced by `***`:

```
$ ROLLOUT_REFRESH_SECONDS=-1 ROLLOUT_PROMETHEUS_URL=ftp://u:pw@prom/ rollout-dashboard status
invalid settings: ROLLOUT_PROMETHEUS_URL: must be an http:// or https:// URL with a host (ftp://***@prom/)
ROLLOUT_REFRESH_SECONDS: Input should be greater than or equal to 2 (got '-1')
```

| variable | default | accepted | meaning |
|---|---|---|---|
"""

_DOCS_LINK = re.compile(r"docs/([a-z_-]+\.md)((?: §\d+)?)")


def reference() -> str:
    """The whole of docs/configuration.md: the header, then one row per setting in the
    model's order."""
    secret_files = ", ".join(f"`ROLLOUT_{name.upper()}_FILE`" for name in SECRET_FILE_SETTINGS)
    rows = [_row(name, field) for name, field in Settings.model_fields.items() if not field.exclude]
    header = _HEADER.format(regenerate=REGENERATE, secret_files=secret_files)
    return header + "\n".join(rows) + "\n"


def _row(name: str, field: FieldInfo) -> str:
    cells = [
        f"`ROLLOUT_{name.upper()}`",
        _default(name, field),
        _accepted(name, field),
        _linked(field.description or ""),
    ]
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _default(name: str, field: FieldInfo) -> str:
    value: Any = field.get_default(call_default_factory=True)
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Enum):
        return f"`{value.value}`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    if isinstance(value, tuple | list | dict):
        return f"`{json.dumps(list(value) if isinstance(value, tuple) else value)}`"
    return f"`{value}`"


def _accepted(name: str, field: FieldInfo) -> str:
    """What a value may be: the choices, the range, the shape; whether it is a secret."""
    kind = _without_none(field.annotation)
    origin = get_origin(kind)
    if name == "webhooks":
        shape = "`name=kind,…`, kind " + _choices(WebhookKind)
    elif origin is dict:
        _, values = get_args(kind)
        shape = "a JSON object" + (f" of {_choices(values)}" if _is_enum(values) else "")
    elif origin in (tuple, list):
        shape = "a JSON list"
    elif _is_enum(kind):
        shape = _choices(kind)
    elif kind is bool:
        shape = "`true` / `false`"
    elif kind in (int, float):
        shape = _bounds(field) or "a number"
    elif kind is Path:
        shape = "a path"
    else:
        shape = "text"
    notes = [shape]
    pattern = next((getattr(m, "pattern", None) for m in field.metadata), None)
    if pattern:
        notes.append(f"matching `{pattern}`")
    if any(isinstance(m, MinLen) for m in field.metadata):
        notes.append("not empty")
    if name in SECRET_FILE_SETTINGS:
        notes.append(f"a secret, or `ROLLOUT_{name.upper()}_FILE`")
    return "; ".join(notes)


def _without_none(annotation: Any) -> Any:
    """`X` for `X | None`; the annotation itself otherwise."""
    if get_origin(annotation) in (Union, UnionType):
        kinds = [kind for kind in get_args(annotation) if kind is not type(None)]
        if len(kinds) == 1:
            return kinds[0]
    return annotation


def _is_enum(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, Enum)


def _choices(kind: Any) -> str:
    return " / ".join(f"`{member.value}`" for member in kind)


def _bounds(field: FieldInfo) -> str:
    """`2 to 3,600` when both ends are included, else `above 0, at most 120`."""
    low: tuple[str, Any] | None = None
    high: tuple[str, Any] | None = None
    for item in field.metadata:
        if isinstance(item, Ge):
            low = ("at least", item.ge)
        elif isinstance(item, Gt):
            low = ("above", item.gt)
        elif isinstance(item, Le):
            high = ("at most", item.le)
        elif isinstance(item, Lt):
            high = ("below", item.lt)
    if low and high and low[0] == "at least" and high[0] == "at most":
        return f"{_number(low[1])} to {_number(high[1])}"
    return ", ".join(f"{word} {_number(value)}" for word, value in filter(None, (low, high)))


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}"


def _linked(text: str) -> str:
    """`docs/x.md` (optionally `§N`) as a link relative to docs/."""
    return _DOCS_LINK.sub(lambda m: f"[{m.group(1)}{m.group(2)}]({m.group(1)})", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.settings_reference", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is stale")
    args = parser.parse_args(argv)
    text = reference()
    if args.check:
        if REFERENCE.read_text(encoding="utf-8") != text:
            print(f"{REFERENCE.name} is stale: run `{REGENERATE}`", file=sys.stderr)
            return 1
        return 0
    REFERENCE.write_text(text, encoding="utf-8")
    print(f"wrote {REFERENCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
