"""Alarms as Prefect events, and retraining started by them, on a real Prefect server.

A monitor-only cycle that sees drift emits `greenlight.drift.detected`; the
`greenlight-retrain` deployment, served with the trigger prefect.yaml declares, starts on
that event and promotes a new champion. No code connects the two but the trigger.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from cli import stack
from cli.deployments import DEPLOYMENTS, FLOW_NAME
from tests.test_deployments import _child_env, _spawn, _tail

pytestmark = pytest.mark.e2e
TRIGGER_TIMEOUT = 180.0


def _retrain_runs(client, deployment_id):
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    return client.read_flow_runs(deployment_filter=DeploymentFilter(
        id=DeploymentFilterId(any_=[deployment_id])))


def test_monitor_drift_event_starts_the_retrain_deployment(prefect_server, tmp_path):
    from prefect.client.orchestration import get_client

    from flows.cycle import cycle, registry_for
    from registry import versions
    from tasks.data.home import Home
    from tasks.data.replay import synthetic_batch, write_batch
    from tasks.data.spec import load_spec

    retrain = next(d for d in DEPLOYMENTS if d.on_events_from == "monitor")
    home = Home(tmp_path / "gl").ensure()
    code = ("from pathlib import Path\n"
            "from cli.deployments import DEPLOYMENTS\n"
            "from cli.up import serve_deployments\n"
            f"serve_deployments([d for d in DEPLOYMENTS if d.name == {retrain.name!r}],\n"
            f"                  dataset='synthetic', home=Path({str(home.root)!r}))\n")
    log = tmp_path / "serve.log"
    proc = _spawn(code, log, _child_env(home.root, PREFECT_API_URL=prefect_server.api_url,
                                        PREFECT_RUNNER_POLL_FREQUENCY="2"))
    reg = registry_for(home, load_spec("synthetic"))
    deadline = time.monotonic() + TRIGGER_TIMEOUT
    try:
        with get_client(sync_client=True) as client:
            deployment = None
            while deployment is None:
                assert proc.poll() is None, f"serve exited {proc.returncode}:\n{_tail(log)}"
                assert time.monotonic() < deadline, f"deployment never appeared:\n{_tail(log)}"
                try:
                    deployment = client.read_deployment_by_name(f"{FLOW_NAME}/{retrain.name}")
                except Exception:  # not registered yet
                    time.sleep(1)
            # serve creates the deployment, then its trigger's automation: wait for both
            while not client.read_resource_related_automations(
                    f"prefect.deployment.{deployment.id}"):
                assert time.monotonic() < deadline, \
                    f"the trigger was not registered as an automation:\n{_tail(log)}"
                time.sleep(1)

            # the server is shared with other tests' cycles: count this test's events only
            since = datetime.now(UTC).isoformat()
            write_batch(synthetic_batch(0), home.landing)
            assert cycle(home=str(home.root), policy="auto")["decision"] == "bootstrap"
            write_batch(synthetic_batch(1), home.landing)  # stable: no alarm, no event
            quiet = cycle(home=str(home.root), policy="monitor")
            assert quiet["decision"] == "no action" and quiet["events"] == []
            write_batch(synthetic_batch(5), home.landing)  # the new market arrives
            seen = cycle(home=str(home.root), policy="monitor")
            assert "greenlight.drift.detected" in seen["events"]
            assert "registered_version" not in seen  # monitor only: nothing trained here
            assert versions.by_alias(reg, "champion").version == 1

            done = None
            while done is None:
                assert proc.poll() is None, f"serve exited {proc.returncode}:\n{_tail(log)}"
                assert time.monotonic() < deadline, f"no triggered run completed:\n{_tail(log)}"
                time.sleep(2)
                runs = _retrain_runs(client, deployment.id)
                broken = [r for r in runs if r.state and r.state.is_final()
                          and not r.state.is_completed()]
                assert not broken, f"{broken[0].state}:\n{_tail(log)}"
                done = next((r for r in runs if r.state and r.state.is_completed()), None)
            time.sleep(3)  # a second event of the same burst would have started a run by now
            runs = _retrain_runs(client, deployment.id)
            events = client.request("POST", "/events/filter", json={"filter": {
                "event": {"name": ["greenlight.drift.detected"]},
                "occurred": {"since": since}}}).json()["events"]
    finally:
        stack.stop([proc])
    (event,) = events  # the stable batch raised none
    assert event["resource"]["greenlight.policy"] == "monitor"
    numbers = {a["kind"]: a for a in event["payload"]["alarms"]}
    assert numbers["data"]["value"] >= numbers["data"]["threshold"] == 0.3
    assert "market" in numbers["adversarial"]["features"]
    assert event["payload"]["champion_version"] == 1 and not event["payload"]["retraining"]
    assert len(runs) == 1, "one monitoring run's alarms start one retrain, not one per event"
    assert done.parameters["force_retrain"] is True and not done.auto_scheduled
    champion = versions.by_alias(reg, "champion")
    assert champion.version == 2, "the triggered retrain did not promote a new champion"
    assert champion.tags["greenlight.policy"] == "auto"
