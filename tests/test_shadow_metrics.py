"""/metrics counts and times the shadow variant as it does the champion (issue 36), in its
own families, so the answered counts stay what callers got. Real uvicorn, real registry."""

from __future__ import annotations

import time

import httpx

from registry.promote import set_alias
from serving.app import create_app
from tests.approval_helpers import registry
from tests.serving_helpers import records, running


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_and_time_the_shadow_without_adding_it_to_answers(two_versions_home,
                                                                          tmp_path):
    reg = registry(two_versions_home)
    set_alias(reg, "challenger", 1)
    with running(create_app(reg, tmp_path / "serve", poll_seconds=60, shadow=True)) as url:
        for row in records(n=12):
            assert httpx.post(f"{url}/predict", json=row).json()["variant"] == "champion"
        httpx.post(f"{url}/predict", json=records(n=3))  # one request of three records
        time.sleep(0.5)  # shadow scoring runs after each response
        seen = _samples(httpx.get(f"{url}/metrics").text)
    answered = {k: v for k, v in seen.items() if k[0] == "greenlight_requests_total"}
    assert answered == {("greenlight_requests_total",
                         (("status", "200"), ("variant", "champion"))): 13.0}
    assert seen[("greenlight_shadow_scored_total", (("outcome", "ok"),))] == 13.0
    assert seen[("greenlight_shadow_latency_seconds_count", ())] == 13.0
    assert seen[("greenlight_shadow_latency_seconds_sum", ())] > 0
    shadow_rows = sum(v for k, v in seen.items() if k[0] == "greenlight_shadow_predictions_total")
    champion_rows = sum(v for k, v in seen.items() if k[0] == "greenlight_predictions_total")
    assert shadow_rows == champion_rows == 15.0
