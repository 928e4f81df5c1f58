"""A guardrails file as users write it, and every mistake named with where it is."""

from pathlib import Path

import pytest

from app.guardrails import GuardrailMode, GuardrailsInvalid, parse_guardrails, read_guardrails

GOOD = """
guardrails:
  - name: http_5xx
    description: HTTP 5xx ratio of the requests served under each variant
    bad: 'sum by (feature_flag_key, variant) (increase(http_requests_total{code=~"5..", environment="{environment}"}[{range}]))'
    total: 'sum by (feature_flag_key, variant) (increase(http_requests_total{environment="{environment}"}[{range}]))'
    flag_label: feature_flag_key
    variant_label: variant
    max_increase: 0.01
    mode: gate
  - name: checkout_failures
    bad: 'sum by (flag, variant) (increase(checkout_failed_total[{range}]))'
    total: 'sum by (flag, variant) (increase(checkout_total[{range}]))'
    flag_label: flag
    variant_label: variant
    max_ratio_increase: 0.2
    mode: dry_run
    flags: [new_checkout]
"""  # noqa: E501


def test_the_issues_form_and_the_extensions_read_as_written():
    http, checkout = parse_guardrails(GOOD)
    assert (http.name, http.limit, http.relative, http.mode) == (
        "http_5xx",
        0.01,
        False,
        GuardrailMode.GATE,
    )
    assert http.acts and http.judges("anything") and http.flag_label == "feature_flag_key"
    assert http.limit_words == "at most +1.00 pt over control"
    assert (checkout.relative, checkout.acts) == (True, False)
    assert checkout.judges("new_checkout") and not checkout.judges("search")
    assert checkout.limit_words == "at most 20 % over control"


def test_an_empty_file_has_no_guardrail():
    assert parse_guardrails("") == ()
    assert parse_guardrails("guardrails: []") == ()


def _one(**changes: object) -> str:
    fields = {
        "name": "http_5xx",
        "bad": "'sum(increase(x[{range}]))'",
        "total": "'sum(increase(y[{range}]))'",
        "flag_label": "flag",
        "variant_label": "variant",
        "max_increase": "0.01",
    }
    fields.update({k: v for k, v in changes.items() if v is not None})
    for k in [k for k, v in changes.items() if v is None]:
        fields.pop(k)
    return "guardrails:\n  - " + "\n    ".join(f"{k}: {v}" for k, v in fields.items())


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("guardrails: {}", "guardrails must be a list"),
        ("other: 1", "the file must be a mapping with one key, guardrails"),
        ("guardrails: [", "not valid YAML (line 1)"),
        (_one(name="'HTTP 5xx'"), "guardrail 1: name 'HTTP 5xx' must be lower-case"),
        (_one(bad="'sum(x)'"), "guardrail http_5xx: bad must count over {range}"),
        (_one(total=None), "guardrail http_5xx: total must be a PromQL query"),
        (_one(max_increase=None), "guardrail http_5xx: give exactly one of max_increase"),
        (_one(max_ratio_increase="0.2"), "guardrail http_5xx: give exactly one of"),
        (_one(max_increase="1.5"), "guardrail http_5xx: max_increase must be at least 0"),
        (_one(max_increase="yes"), "guardrail http_5xx: max_increase must be a number"),
        (_one(mode="enforce"), "guardrail http_5xx: mode 'enforce' must be gate or dry_run"),
        (_one(flag_label="'a-b'"), "guardrail http_5xx: flag_label must be a Prometheus label"),
        (_one(threshold="1"), "guardrail http_5xx: unknown keys 'threshold'"),
        (_one(flags="checkout"), "guardrail http_5xx: flags must be a list of flag keys"),
    ],
)
def test_each_mistake_is_named(text: str, said: str):
    with pytest.raises(GuardrailsInvalid) as raised:
        parse_guardrails(text)
    assert str(raised.value).startswith(said), str(raised.value)


def test_names_are_unique():
    twice = _one() + "\n  - " + _one()[len("guardrails:\n  - ") :]
    with pytest.raises(GuardrailsInvalid, match="names must be unique: http_5xx"):
        parse_guardrails(twice)


def test_a_hostile_file_is_refused_by_the_yaml_limits():
    laughs = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
        f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(8)
    )
    with pytest.raises(GuardrailsInvalid):
        parse_guardrails(laughs)


def test_reading_says_why_and_loses_nothing(tmp_path: Path):
    path = tmp_path / "guardrails.yaml"
    assert read_guardrails(None) == ((), "")
    missing = read_guardrails(path)
    assert missing[0] == () and missing[1].startswith(f"guardrails file {path}: ")
    path.write_text(GOOD)
    rails, trouble = read_guardrails(path)
    assert [r.name for r in rails] == ["http_5xx", "checkout_failures"] and trouble == ""
    path.write_text(_one(mode="enforce"))
    assert read_guardrails(path)[1] == (
        f"guardrails file {path}: guardrail http_5xx: mode 'enforce' must be gate or dry_run"
    )
