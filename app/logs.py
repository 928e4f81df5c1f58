"""How every process logs (`ROLLOUT_LOG_FORMAT`): plain lines by default, or one JSON
object per line with `time`, `level`, `event` and, where known, `flag`, `environment`,
`actor` and `audit_id` (passed as `extra=` fields of a log call, or as keywords of `say`).

`configure_logging` sets the root handler once per process (stderr); `say` is what the
long-running commands (`serve`, `autopilot`) print on stdout as they work, in the same
format. Neither ever writes a secret: callers pass only what may be shown.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

__all__ = ["FIELDS", "JsonFormatter", "configure_logging", "json_line", "say"]

#: the structured fields a log line may carry, in this order
FIELDS = ("flag", "environment", "actor", "audit_id")
_configured: list[str] = []


def json_line(level: str, event: str, logger: str = "", **fields: Any) -> str:
    """One JSON object (no newline): time (UTC, ISO 8601), level, event, logger and the
    known fields that are set."""
    document: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "level": level.lower(),
        "event": event,
    }
    if logger:
        document["logger"] = logger
    for name in FIELDS:
        value = fields.get(name)
        if value not in (None, ""):
            document[name] = value
    for name, value in fields.items():
        if name not in FIELDS and value not in (None, ""):
            document[name] = value
    return json.dumps(document, default=str, ensure_ascii=False)


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object; an exception's traceback goes in `error`."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {name: getattr(record, name, None) for name in FIELDS}
        if record.exc_info:
            fields["error"] = self.formatException(record.exc_info)
        return json_line(record.levelname, record.getMessage(), record.name, **fields)


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    """The root logger's one handler (stderr), plain (`LEVEL logger: message`) or JSON,
    at `level` for this project's loggers and at least WARNING for libraries'; called
    again alike, nothing changes."""
    if _configured and _configured[-1] == f"{log_format}:{level}":
        return
    handler = logging.StreamHandler(sys.stderr)
    if str(log_format) == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_rollout", False)]:
        root.removeHandler(old)
    handler._rollout = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(max(level, logging.WARNING))  # libraries: only their warnings
    for ours in ("app", "queries"):
        logging.getLogger(ours).setLevel(level)
    _configured.append(f"{log_format}:{level}")


def say(
    text: str,
    *,
    log_format: str = "text",
    level: str = "info",
    out: IO[str] | None = None,
    **fields: Any,
) -> None:
    """`text` on stdout as the process's own line: as it is, or (json) as one object
    whose `event` is `text`, with the given fields."""
    stream = out or sys.stdout
    line = text if str(log_format) != "json" else json_line(level, text, **fields)
    print(line, file=stream, flush=True)
