"""One cycle of the loop as a Prefect flow: the order of the steps and the decisions only."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.settings import PREFECT_API_URL

from core.clean import json_safe
from core.faults import crash_point, hold_point
from core.servers import real_api_url
from core.steps import Steps
from flows import heartbeat, scaled
from flows.params import Policy, Scale, Thresholds, Training, approval_needs_server
from flows.retrain import (
    BASELINE_TAG,
    BATCH_IDS_TAG,
    CHAMPION_SEEN_TAG,
    acknowledged,
    links,
    retrain,
)
from registry import promote as promotion
from registry import versions
from registry.locks import cycle_claim
from registry.store import Registry, for_dataset
from tasks.data import harvest, idle, ingest, labels, lake, manifest, predictions
from tasks.data.home import Home
from tasks.data.spec import DatasetSpec, load_spec, suite_path
from tasks.data.validate import read_suite, split_label_checks, validate_frame
from tasks.gate.decide import decide
from tasks.monitoring import alarms
from tasks.monitoring.drift import StatTests
from tasks.monitoring.monitor import Limits, MonitorResult, monitor_batch
from tasks.monitoring.quality import load_ranges
from tasks.publish import dashboards, reports
from tasks.scale.distributed import DaskEngine

scan_t = task(ingest.scan, name="ingest")
read_t = task(ingest.try_read, name="read")
validate_t = task(validate_frame, name="validate")
accept_t = task(ingest.accept, name="accept")
reject_t = task(ingest.reject, name="quarantine")
monitor_t = task(monitor_batch, name="monitor")
publish_t = task(dashboards.publish_batch, name="publish")
harvest_t = task(harvest.harvest, name="harvest")
served_t = task(predictions.served_metrics, name="served predictions")
labels_t = task(labels.implausible, name="label check")
heartbeat.off_unless_asked()


def registry_for(home: Home, spec: DatasetSpec) -> Registry:
    return for_dataset(spec.name, home.root, home.tracking_uri)


def _intake(home: Home, spec: DatasetSpec, engine: DaskEngine) -> list[str]:
    """Every landed file becomes an accepted batch or a quarantined one; none is lost.

    Returns the one-line reasons of what was quarantined; each is also logged, so the user
    sees it on the console. A file still being written stays in landing for the next cycle."""
    logger = get_run_logger()
    suite, _ = split_label_checks(read_suite(suite_path(spec.name)), spec.target)
    known = manifest.load(home.manifest)
    found = scan_t(home.landing)
    crash_point("ingest")
    for name in found.busy:
        logger.warning("%s: still being written; left in landing for the next cycle", name)
    quarantined: list[str] = []
    for landed in found.ready:
        if landed.batch_id in known:
            twin = known[landed.batch_id]
            ingest.file_duplicate(home, landed, twin.get("status"))
            logger.warning("%s: same bytes as %s (batch %s, %s); kept beside it, not processed "
                           "again", landed.path.name, twin.get("file"), landed.batch_id,
                           twin.get("status"))
            continue
        frame, error = read_t(landed.path, spec)
        if error:
            reason = reject_t(home, landed, error)
        else:
            where = {"source": landed.path.name, "time_column": spec.time_column}
            checked = (scaled.validate(engine, frame, suite, **where)
                       if engine.wants(len(frame)) else validate_t(frame, suite, **where))
            crash_point("validate")
            if checked.success:
                accept_t(home, landed, frame, spec)
                # accept may refuse: a file that changed meanwhile stays in landing, and the
                # same rows as a batch in the lake are quarantined (already logged there).
                record = manifest.load(home.manifest).get(landed.batch_id)
                if record is not None:
                    known[landed.batch_id] = {"file": landed.path.name,
                                              "status": record.get("status")}
                    if record.get("status") == "quarantined":
                        quarantined.append(record.get("reason"))
                continue
            reason = reject_t(home, landed, checked.reason, checked.to_dict(),
                              checked.to_markdown(), rows=len(frame))
        known[landed.batch_id] = {"file": landed.path.name, "status": "quarantined"}
        logger.warning("quarantined %s", reason)
        quarantined.append(reason)
    return quarantined


def _hold(home: Home, spec: DatasetSpec, min_rows: int) -> list[str]:
    """Hold every pending batch whose labels are implausible (tasks/data/labels.py) from training
    and gating; returns the one-line reasons, each also logged. A batch a person released
    is not held again. Pending, not just landed: a crash between accept and hold is
    caught by the re-run."""
    logger = get_run_logger()
    _, label_suite = split_label_checks(read_suite(suite_path(spec.name)), spec.target)
    held = []
    for batch in manifest.pending(home.manifest):
        if batch.get("released_by"):
            continue
        frame = labels.attach(lake.read_batches(home.lake, [batch["id"]]), home, spec)
        reason = labels_t(frame, spec, label_suite, min_rows=min_rows,
                          source=batch.get("file") or batch["id"])
        if reason is None:
            continue
        manifest.hold(home.manifest, batch["id"], reason)
        line = (f"held batch {batch['id']}: {reason}; to train on it anyway: greenlight "
                f"release {batch['id'][:12]} --by NAME --reason TEXT")
        logger.warning(line)
        held.append(line)
    return held


def _monitor(home: Home, reg: Registry, spec: DatasetSpec, champion: versions.VersionInfo,
             pending: list[dict], thresholds: Thresholds, engine: DaskEngine
             ) -> tuple[list[MonitorResult], dict[str, str]]:
    model = versions.load_model(reg, champion.version)
    reference = versions.load_reference(reg, champion)
    registered = float(champion.tags.get(BASELINE_TAG)
                       or champion.metrics[f"gate_challenger_{spec.primary_metric}"])
    experiment = reg.experiment_id(f"{reg.model_name}-monitoring")
    limits = Limits(label_drift=thresholds.label_drift,
                    prediction_drift=thresholds.prediction_drift,
                    adversarial_auc=thresholds.adversarial_auc,
                    tests=StatTests(thresholds.num_method, thresholds.cat_method,
                                    thresholds.per_column_method, thresholds.column_threshold),
                    drift_share=thresholds.drift_share, min_rows=thresholds.min_rows)
    ranges = load_ranges(suite_path(spec.name))
    results, runs = [], {}
    for batch in pending:
        frame = labels.attach(lake.read_batches(home.lake, [batch["id"]]), home, spec)
        # On Dask, the partitions give the input metrics and a sample of the whole batch.
        rows, inputs = (scaled.profile(engine, frame, spec, ranges) if engine.wants(len(frame))
                        else (frame, None))
        result = monitor_t(batch["id"], rows, reference, model, registered, spec,
                           home.reports / batch["id"], limits=limits, ranges=ranges,
                           inputs=inputs, source=batch.get("file"))
        runs[batch["id"]] = reports.log_run(
            reg.tracking_uri, experiment, f"monitor-{batch['file']}",
            metrics=result.run_metrics(spec.primary_metric),
            tags={"greenlight.file": batch["file"], **result.run_tags(champion.version)},
            artifacts={"drift": home.reports / batch["id"]})
        publish_t(home.evidently, reg.tracking_uri, experiment, runs[batch["id"]], spec,
                  batch["id"], frame, result.to_dict(), thresholds.model_dump(),
                  tags={"file": batch["file"], "champion_version": str(champion.version)})
        results.append(result)
    return results, runs


def _served(home: Home, reg: Registry, spec: DatasetSpec,
            champion: versions.VersionInfo | None) -> list[predictions.ServedStats]:
    """Output metrics of what the service answered since the last cycle, per version and
    variant, logged as one `served-…` run in the monitoring experiment."""
    since, until = predictions.last_monitored(home), predictions.window_end()
    log = predictions.read(home, since, until)
    log = log[log["model"] == reg.model_name]
    stats = served_t(log, spec) if not log.empty else []
    if stats:
        reports.log_run(
            reg.tracking_uri, reg.experiment_id(f"{reg.model_name}-monitoring"),
            f"served-{until:%Y%m%dT%H%M%S}",
            metrics={"served.count": len(log),
                     **{k: v for s in stats for k, v in s.run_metrics().items()}},
            tags={"greenlight.served": "true",
                  "greenlight.predictions_since": since.isoformat() if since else "",
                  "greenlight.predictions_until": until.isoformat(),
                  "greenlight.champion_version": str(champion.version) if champion else "none",
                  "greenlight.served_versions": ",".join(sorted({s.name for s in stats}))})
    predictions.mark_monitored(home, until)
    return stats


def _intake_rows(before: dict[str, dict], after: dict[str, dict]) -> tuple[int, int]:
    """Rows that arrived this run and rows accepted, from the manifest's new records."""
    new = [b for k, b in after.items() if k not in before]
    return (sum(b.get("rows") or 0 for b in new),
            sum(b.get("rows") or 0 for b in new if b.get("status") == "accepted"))


def _newest_accepted(home: Home) -> list[dict]:
    accepted = [b for b in manifest.load(home.manifest).values() if b.get("status") == "accepted"]
    return accepted[-1:]


def _late_labels(home: Home, reg: Registry, spec: DatasetSpec,
                 champion: versions.VersionInfo) -> list[MonitorResult]:
    """Decay of monitored batches whose labels landed since: batch t's labels may come with
    batch t+k. Each is logged to the monitoring experiment and recorded in the manifest."""
    waiting = labels.awaiting(manifest.load(home.manifest))
    if not waiting or not labels.available(home):
        return []
    model = versions.load_model(reg, champion.version)
    registered = float(champion.tags.get(BASELINE_TAG)
                       or champion.metrics[f"gate_challenger_{spec.primary_metric}"])
    experiment = reg.experiment_id(f"{reg.model_name}-monitoring")
    out = []
    for batch in waiting:
        frame = labels.attach(lake.read_batches(home.lake, [batch["id"]]), home, spec)
        result = labels.late_decay(batch, frame, model, spec, registered)
        if result is None:
            continue
        reports.log_run(reg.tracking_uri, experiment, f"labels-{batch['file']}",
                        metrics=result.run_metrics(spec.primary_metric),
                        tags={"greenlight.file": batch["file"], "greenlight.late_labels": "true",
                              **result.run_tags(champion.version)})
        manifest.append(home.manifest, batch["id"], champion_metric=result.champion_metric,
                        decay=result.decay, labelled_rows=result.labelled_rows,
                        registered_metric=registered, labels_at=manifest.now_iso())
        out.append(result)
    return out


def _seen(result: MonitorResult, batches: list[dict], late: bool) -> dict[str, Any]:
    """What the cycle's one-line account needs of a monitored batch (cli/views.py
    `cycle_line`): its file, drift and decay, without the full result the manifest keeps."""
    files = {b["id"]: b.get("file") for b in batches}
    return {"batch_id": result.batch_id, "file": files.get(result.batch_id),
            "late_labels": late, "rows": result.rows,
            "drift_share": result.drift_share, "drifted_features": result.drifted_features,
            "label_drifted": result.label_drifted,
            "prediction_drifted": result.prediction_drifted,
            "adversarial_drifted": result.adversarial_drifted,
            "decay": result.decay, "not_judged": result.not_judged}


def _judged_against(reg: Registry, pending: list[dict]) -> versions.VersionInfo | None:
    """The champion these batches are judged against: the live one, unless a run on the
    same batches crashed after registering its challenger. Then it is the champion that run
    saw, so the re-run reaches the same decision and finds its registration (and promotion)
    already done, instead of judging its own batches against the model they produced."""
    live = versions.by_alias(reg, promotion.CHAMPION)
    ids = ",".join(b["id"] for b in pending)
    done = versions.find_by_tag(reg, BATCH_IDS_TAG, ids) if ids else None
    if done is None:
        return live
    seen = done.tags.get(CHAMPION_SEEN_TAG, "none")
    if seen == "none":
        return None
    if live is not None and str(live.version) == seen:
        return live
    return versions.by_version(reg, int(seen))


@flow(name="greenlight-cycle", log_prints=True)
def cycle(dataset: str = "synthetic", policy: Policy = "auto",
          thresholds: Thresholds = Thresholds(), training: Training = Training(),
          force_retrain: bool = False, approval_timeout_seconds: int = 86_400,
          home: str | None = None, harvest_served: bool = True,
          scale: Scale = Scale()) -> dict[str, Any]:
    """Harvest, ingest what landed, validate, monitor against the champion, decide, retrain,
    promote.

    With `harvest_served`, served predictions whose labels have landed first become a batch
    in landing (tasks/data/harvest.py), so the loop trains on what the service saw. With policy
    manual or partial the run may pause for approval in the Prefect UI; an unanswered
    request times out after `approval_timeout_seconds` and counts as a rejection.
    Steps whose input reaches `scale.dask_min_rows` rows run on Dask (flows/scaled.py).
    One cycle of a dataset at a time has its batches (registry/locks.py); a second one started
    meanwhile says so and does nothing."""
    with cycle_claim(Home.from_env(home).ensure().root, dataset) as taken:
        if taken:
            get_run_logger().warning(taken)
            return {"batches": [], "taken": taken}
        hold_point("cycle")  # test-only: a second cycle starts while this one has the claim
        with scaled.engine(scale) as engine:
            return _cycle(dataset, policy, thresholds, training, force_retrain,
                          approval_timeout_seconds, home, harvest_served, engine)


def _cycle(dataset: str, policy: Policy, thresholds: Thresholds, training: Training,
           force_retrain: bool, approval_timeout_seconds: int, home: str | None,
           harvest_served: bool, engine: DaskEngine) -> dict[str, Any]:
    logger = get_run_logger()
    refusal = approval_needs_server(policy, real_api_url(PREFECT_API_URL.value()))
    if refusal:
        raise ValueError(refusal)
    spec, state = load_spec(dataset), Home.from_env(home).ensure()
    reg = registry_for(state, spec)
    steps = Steps()
    before = manifest.load(state.manifest)
    labels_seen = idle.labels_fingerprint(state)  # before any step reads the feed
    with ingest.intake_lock(state):
        with steps.step("harvest") as step:
            harvested = harvest_t(state, spec, reg.model_name) if harvest_served else None
            step.rows_out = harvested.rows if harvested else 0
        with steps.step("ingest+validate") as step:
            quarantined = _intake(state, spec, engine)
            step.rows_in, step.rows_out = _intake_rows(before, manifest.load(state.manifest))
        with steps.step("label check"):
            held = _hold(state, spec, thresholds.min_rows)
    pending = manifest.pending(state.manifest)
    champion = _judged_against(reg, pending)
    with steps.step("late labels") as step:
        late = _late_labels(state, reg, spec, champion) if champion else []
        step.rows_out = sum(r.labelled_rows for r in late)
    with steps.step("served") as step:
        served = _served(state, reg, spec, champion)
        step.rows_in = sum(s.count for s in served)
    if not pending and not force_retrain and not late and not served:
        logger.info("nothing new in %s", state.landing)
        idle.remember_labels(state, spec.name, labels_seen)
        return {"batches": [], "quarantined": quarantined, "held": held,
                "timings": steps.timings,
                "harvested": harvested.to_dict() if harvested else None}
    with steps.step("monitor", rows_in=sum(b["rows"] for b in pending)):
        results, monitor_runs = (_monitor(state, reg, spec, champion, pending, thresholds,
                                          engine) if champion else ([], {}))
    crash_point("monitor")
    decision = decide(results + late, has_champion=champion is not None,
                      drift_share=thresholds.drift_share, max_decay=thresholds.max_decay,
                      force=force_retrain, acknowledged=acknowledged(champion))
    raised = [a for r in results + late for a in alarms.check(
        r, drift_share=thresholds.drift_share, max_decay=thresholds.max_decay,
        max_missing_share=thresholds.max_missing_share,
        max_out_of_range=thresholds.max_out_of_range,
        max_failed_predictions=thresholds.max_failed_predictions)]
    raised += alarms.check_served(served, max_failed_predictions=thresholds.max_failed_predictions)
    retraining = decision.retrain and policy != "monitor"
    # A forced run with nothing new (e.g. started by a drift event) retrains on the newest batch.
    train_on = pending or _newest_accepted(state)
    outcome: dict[str, Any] = {}
    if retraining and train_on:
        params = {"policy": policy, "training": training,
                  "approval_timeout_seconds": approval_timeout_seconds, "engine": engine}
        outcome = retrain(state, reg, spec, champion, train_on, decision, results, monitor_runs,
                          params, steps)
    events = alarms.emit(raised, dataset=spec.name, policy=policy, model=reg.model_name,
                         champion_version=champion.version if champion else None,
                         retraining=retraining) if raised else []
    by_id = {r.batch_id: {k: v for k, v in r.to_dict().items() if k != "batch_id"}
             for r in results}
    recorded = pending or (train_on if outcome else [])
    for batch in recorded:
        manifest.append(state.manifest, batch["id"], decision=decision.action,
                        reasons=decision.reasons, **by_id.get(batch["id"], {}),
                        **{k: v for k, v in outcome.items() if k != "gate"},
                        gate=outcome.get("gate", {}).get("reason"), timings=steps.timings,
                        alarms=sorted({a.kind for a in raised if a.batch_id == batch["id"]}))
    reports.log_run(reg.tracking_uri, reg.experiment_id(f"{reg.model_name}-pipeline"),
                    f"cycle-{policy}", metrics=steps.mlflow_metrics(),
                    tags={"greenlight.decision": decision.action, "greenlight.policy": policy,
                          "greenlight.batch_ids": ",".join(b["id"] for b in pending),
                          "greenlight.events": ",".join(events)})
    labelled = list(manifest.load(state.manifest).values()) if late else []
    summary = {"batches": [b["id"] for b in pending], "files": [b.get("file") for b in pending],
               "decision": decision.action, "reasons": decision.reasons, **outcome,
               "policy": policy,
               "champion_version": champion.version if champion else None,
               "monitored": [_seen(r, pending, late=False) for r in results]
               + [_seen(r, labelled, late=True) for r in late],
               "quarantined": quarantined,
               "held": held,
               "timings": steps.timings, "alarms": [a.to_dict() for a in raised],
               "events": events, "late_labels": [r.batch_id for r in late],
               "served": [s.to_dict() for s in served],
               "harvested": harvested.to_dict() if harvested else None}
    create_markdown_artifact(
        key=f"greenlight-cycle-{spec.name.replace('_', '-')}",
        markdown=reports.cycle_markdown(spec.name, decision.action, decision.reasons,
                                        [r.to_dict() for r in results], outcome, steps.timings,
                                        reg.tracking_uri, steps=steps.rows(),
                                        alarms=[a.to_dict() for a in raised],
                                        late=[r.to_dict() for r in late],
                                        links=links(reg, outcome.get("registered_version"),
                                                     monitor_runs, state),
                                        served=[s.to_dict() for s in served], held=held),
        description="What this cycle saw and decided")
    idle.remember_labels(state, spec.name, labels_seen)
    if outcome.get("no_champion"):
        # The data cannot give a first champion yet: recorded on the batches above (status
        # shows it), and the run ends non-zero with the one line (`greenlight run`: exit 2).
        raise ValueError(outcome["no_champion"])
    return json_safe(summary)  # strict JSON: an undefined metric is null, never NaN
