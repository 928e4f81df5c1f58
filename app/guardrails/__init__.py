"""Your own guardrails: the service's metrics (HTTP 5xx, latency over a bound, checkout
failures) per flag and variant, judged like the flag's own errors (docs/metrics.md)."""

from app.guardrails.model import (
    Guardrail,
    GuardrailMode,
    GuardrailsInvalid,
    load_guardrails,
    parse_guardrails,
    read_guardrails,
)

__all__ = [
    "Guardrail",
    "GuardrailMode",
    "GuardrailsInvalid",
    "load_guardrails",
    "parse_guardrails",
    "read_guardrails",
]
