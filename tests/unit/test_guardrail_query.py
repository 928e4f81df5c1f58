"""A guardrail's query as sent: the environment escaped, `increase` over the slot read as
the counter's growth over it (exact per slot), anything else with the slot's length."""

from datetime import timedelta

from queries.guardrails import guardrail_query

BAD = (
    'sum by (feature_flag_key, variant) (increase(http_requests_total{code=~"5..", '
    'environment="{environment}"}[{range}]))'
)


def test_increase_over_the_slot_is_the_counters_growth():
    sent = guardrail_query(BAD, "production", timedelta(seconds=30))
    selector = 'http_requests_total{code=~"5..", environment="production"}'
    assert sent == (
        f"sum by (feature_flag_key, variant) ((({selector} - {selector} offset 30s) >= 0))"
    )


def test_the_environment_is_escaped_inside_its_quotes():
    sent = guardrail_query(BAD, 'pro"d\\', timedelta(seconds=30))
    assert 'environment="pro\\"d\\\\"' in sent


def test_other_uses_of_the_range_keep_the_slot_length():
    text = "histogram_quantile(0.99, sum by (le, flag, variant) (rate(x_bucket[{range}])))"
    assert guardrail_query(text, "p", timedelta(seconds=60)) == text.replace("{range}", "60s")
