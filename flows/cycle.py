"""One cycle of the loop as a Prefect flow: the order of the steps and the decisions only."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.settings import PREFECT_API_URL

from flows import scaled
from flows.locks import promotion_lock
from flows.params import Approval, Policy, Scale, Thresholds, Training, approval_needs_server
from registry import promote as promotion
from registry import register as registration
from registry import versions
from registry.store import Registry
from tasks import (
    alarms,
    dashboards,
    harvest,
    ingest,
    labels,
    lake,
    manifest,
    predictions,
    recipe,
    reports,
    train,
)
from tasks.decide import Decision, decide, route
from tasks.distributed import DaskEngine
from tasks.drift import StatTests
from tasks.faults import crash_point, hold_point
from tasks.gate import gate
from tasks.home import Home
from tasks.monitor import Limits, MonitorResult, monitor_batch
from tasks.pipeline import Steps
from tasks.quality import load_ranges
from tasks.spec import DatasetSpec, load_spec, suite_path
from tasks.validate import read_suite, validate_frame

scan_t = task(ingest.scan, name="ingest")
read_t = task(ingest.try_read, name="read")
validate_t = task(validate_frame, name="validate")
accept_t = task(ingest.accept, name="accept")
reject_t = task(ingest.reject, name="quarantine")
monitor_t = task(monitor_batch, name="monitor")
publish_t = task(dashboards.publish_batch, name="publish")
recipe_t = task(recipe.choose_before_gate, name="recipe")
train_t = task(train.train_challenger, name="train")
refit_t = task(recipe.refit_challenger, name="refit")
gate_t = task(gate, name="gate")
register_t = task(registration.register, name="register", retries=2, retry_delay_seconds=2)
promote_t = task(promotion.promote, name="promote", retries=2, retry_delay_seconds=2)
harvest_t = task(harvest.harvest, name="harvest")
served_t = task(predictions.served_metrics, name="served predictions")


def registry_for(home: Home, spec: DatasetSpec) -> Registry:
    return Registry(home.tracking_uri, f"greenlight-{spec.name}", home.root)


def _intake(home: Home, spec: DatasetSpec, engine: DaskEngine) -> list[str]:
    """Every landed file becomes an accepted batch or a quarantined one; none is lost.

    Returns the one-line reasons of what was quarantined; each is also logged, so the user
    sees it on the console. A file still being written stays in landing for the next cycle."""
    logger = get_run_logger()
    suite = read_suite(suite_path(spec.name))
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
                known[landed.batch_id] = {"file": landed.path.name, "status": "accepted"}
                continue
            reason = reject_t(home, landed, checked.reason, checked.to_dict(),
                              checked.to_markdown(), rows=len(frame))
        known[landed.batch_id] = {"file": landed.path.name, "status": "quarantined"}
        logger.warning("quarantined %s", reason)
        quarantined.append(reason)
    return quarantined


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
                                    thresholds.per_column_method, thresholds.column_threshold))
    ranges = load_ranges(suite_path(spec.name))
    results, runs = [], {}
    for batch in pending:
        frame = labels.attach(lake.read_batches(home.lake, [batch["id"]]), home, spec)
        # On Dask, the partitions give the input metrics and a sample of the whole batch.
        rows, inputs = (scaled.profile(engine, frame, spec, ranges) if engine.wants(len(frame))
                        else (frame, None))
        result = monitor_t(batch["id"], rows, reference, model, registered, spec,
                           home.reports / batch["id"], limits=limits, ranges=ranges,
                           inputs=inputs)
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


BATCH_IDS_TAG, CHAMPION_SEEN_TAG = "greenlight.batch_ids", "greenlight.champion_version"
ACK_TAG = "greenlight.drift_acknowledged"
BASELINE_TAG = "greenlight.baseline_metric"


def _acknowledged(champion: versions.VersionInfo | None) -> frozenset[str]:
    """Drift kinds the champion has answered: a retrain on them found nothing better."""
    return frozenset(filter(None, (champion.tags.get(ACK_TAG, "") if champion else "").split(",")))


def _links(reg: Registry, version: int | None, monitor_runs: dict[str, str],
           home: Home) -> dict:
    """Where a person checks the version, its drift reports and the dashboard: UI links
    with servers (`greenlight up` sets GREENLIGHT_EVIDENTLY_URL), else local paths."""
    uri = reg.tracking_uri.rstrip("/")
    dashboard = {"Evidently dashboard": os.environ.get("GREENLIGHT_EVIDENTLY_URL")
                 or f"uv run evidently ui --workspace {home.evidently}"}
    if not uri.startswith("http"):
        return {"MLflow store (open with `mlflow ui`)": uri,
                **{f"drift report {b}": str(home.reports / b / "drift.html")
                   for b in monitor_runs}, **dashboard}
    experiment = reg.experiment_id(f"{reg.model_name}-monitoring")
    model = ({f"MLflow model version v{version}":
              f"{uri}/#/models/{reg.model_name}/versions/{version}"} if version else {})
    return {**model,
            **{f"drift report {b}": f"{uri}/#/experiments/{experiment}/runs/{run}/artifacts"
               for b, run in monitor_runs.items()}, **dashboard}


def _ask_and_promote(reg: Registry, version: int, description: str, timeout_s: int,
                     promote_kwargs: dict[str, Any]) -> str:
    """Pause for a person; approve promotes, reject or timeout leave the champion alone."""
    logger = get_run_logger()
    try:
        form = Approval.with_initial_data(description=description)
        answer = pause_flow_run(wait_for_input=form, timeout=timeout_s, key=f"approve-v{version}")
    except FlowPauseTimeout:
        promotion.record_decision(reg, version, outcome="timed out", by=None,
                                  reason=f"no answer within {timeout_s} s")
        logger.warning("approval of v%s timed out: treated as a rejection", version)
        return "timed out"
    if not answer.approve:
        promotion.record_decision(reg, version, outcome="rejected", by=answer.approver,
                                  reason=answer.reason)
        return "rejected"
    promotion.record_decision(reg, version, outcome="approved", by=answer.approver,
                              reason=answer.reason)
    try:
        with promotion_lock(reg.model_name):
            promote_t(reg, version, by=answer.approver,
                      **{**promote_kwargs, "reason": f"approved by {answer.approver}: "
                                                     f"{answer.reason or 'no reason given'}"})
    except promotion.PromotionError as exc:
        logger.warning("approved, but not promoted: %s", exc)
        return "approved, not promoted (champion moved)"
    return "approved"


def _recipe(history: pd.DataFrame, spec: DatasetSpec, training: Training, gate_rows: int,
            steps: Steps) -> recipe.RecipeChoice:
    """The recipe the challenger trains with: backtested, or fixed by the user or spec."""
    fixed = recipe.Recipe(training.half_life_days or spec.training.half_life_days,
                          training.window_days or spec.training.window_days)
    if not training.auto_recipe or training.half_life_days or training.window_days:
        return recipe.RecipeChoice(fixed, pd.DataFrame(), spec.primary_metric,
                                   reason="fixed by the flow parameters or the dataset spec")
    with steps.step("recipe", rows_in=len(history)):
        choice = recipe_t(history, spec, gate_rows=gate_rows)
    if not choice.table.empty:
        create_table_artifact(key=f"greenlight-recipe-{spec.name.replace('_', '-')}",
                              table=choice.table.round(4).to_dict(orient="records"),
                              description=choice.reason)
    get_run_logger().info("recipe %s (%s)", choice.best.name, choice.reason)
    return choice


def _newer(reg: Registry, champion: versions.VersionInfo | None,
           challenger: train.Challenger) -> bool:
    """Did the challenger learn from rows newer than any the champion saw?"""
    seen = versions.trained_until(reg, champion) if champion else None
    return seen is not None and pd.Timestamp(challenger.params["train_end"]) > seen


def _retrain(home: Home, reg: Registry, spec: DatasetSpec, champion: versions.VersionInfo | None,
             pending: list[dict], decision: Decision, results: list[MonitorResult],
             monitor_runs: dict[str, str], params: dict[str, Any],
             steps: Steps) -> dict[str, Any]:
    """Train, gate, register and route by policy; the champion moves only through promote."""
    training: Training = params["training"]
    accepted = [b["id"] for b in manifest.load(home.manifest).values() if b["status"] == "accepted"]
    history = labels.attach(lake.read_batches(home.lake, accepted), home, spec)
    history = history[history[spec.target].notna()]  # train and gate on labelled rows only
    gate_rows = int(training.gate_fraction * max(b["rows"] for b in pending))
    choice = _recipe(history, spec, training, gate_rows, steps)
    with steps.step("train", rows_in=len(history)) as step:
        challenger = train_t(history, spec, gate_rows=gate_rows,
                             half_life_days=choice.best.half_life_days,
                             window_days=choice.best.window_days,
                             reference_rows=training.reference_rows,
                             batch_column=lake.BATCH_COLUMN,
                             fitter=scaled.fitter(params["engine"], len(history)))
        step.rows_out = len(challenger.split.train)
    crash_point("train")
    with steps.step("gate", rows_in=len(challenger.split.gate)):
        champion_model = versions.load_model(reg, champion.version) if champion else None
        result = gate_t(challenger.model, champion_model, challenger.split.gate, spec,
                        min_delta=training.min_delta, slice_feature=spec.slice_feature,
                        newer=training.prefer_newer and _newer(reg, champion, challenger))
    create_table_artifact(key=f"greenlight-gate-{spec.name.replace('_', '-')}",
                          table=result.to_rows(), description=result.reason)
    route_to = route(params["policy"], result.verdict)
    out: dict[str, Any] = {"gate": result.to_dict(), "verdict": result.verdict,
                           "route": route_to, "challenger_metric": result.challenger,
                           "gate_champion_metric": result.champion}
    ch_metrics, champ_metrics = result.challenger_metrics, result.champion_metrics
    metrics = {**{f"gate_challenger_{k}": v for k, v in ch_metrics.items()},
               **{f"gate_champion_{k}": v for k, v in champ_metrics.items()}}
    tags = {"greenlight.dataset": spec.name, "greenlight.decision": decision.action,
            "greenlight.reasons": " | ".join(decision.reasons)[:4000],
            "greenlight.gate": result.verdict, "greenlight.gate_reason": result.reason,
            "greenlight.gate_gain": f"{result.gain}", "greenlight.gate_ci": f"{result.ci_low}"
                                                                            f"..{result.ci_high}",
            "greenlight.policy": params["policy"], "greenlight.recipe": choice.best.name,
            "greenlight.recipe_reason": choice.reason[:4000],
            BATCH_IDS_TAG: ",".join(b["id"] for b in pending),
            "greenlight.data_hash": challenger.data_hash,
            CHAMPION_SEEN_TAG: str(champion.version) if champion else "none"}
    if route_to == "none":
        if champion is not None and result.champion is not None:
            # The champion held on the newest data: acknowledge the drift, and its score there
            # becomes the baseline decay is measured against.
            kinds = (decision.kinds - {"decay", "forced"}) | _acknowledged(champion)
            registration.tag_version(reg, champion.version, {
                ACK_TAG: ",".join(sorted(kinds)), BASELINE_TAG: f"{result.champion}"})
        experiment = reg.experiment_id(f"{reg.model_name}-training")
        reports.log_run(reg.tracking_uri, experiment, f"rejected-{challenger.batch_set[:8]}",
                        metrics=metrics, tags=tags, params=challenger.params)
        return out
    if training.refit:
        with steps.step("refit", rows_in=len(history)) as step:
            challenger, problems = refit_t(challenger, history, spec, choice.best, champion_model,
                                           reference_rows=training.reference_rows,
                                           batch_column=lake.BATCH_COLUMN)
            step.rows_out = challenger.params.get("refit_rows", 0)
        if problems:
            get_run_logger().warning("refit failed its sanity checks (%s): registering the "
                                     "gated model", "; ".join(problems))
    tags[versions.TRAINED_UNTIL_TAG] = challenger.params["trained_until"]
    hold_point("register")
    with steps.step("register"):
        sample = challenger.model.example(challenger.split.gate.head(5))
        version = register_t(reg, python_model=challenger.model, input_example=sample,
                             output_example=challenger.model.predict(None, sample),
                             reference=challenger.reference, batch_set=challenger.batch_set,
                             params=challenger.params, metrics=metrics, tags=tags,
                             experiment=f"{reg.model_name}-training",
                             artifacts={"recipe": reports.write_json(
                                 home.reports / "recipes" / f"{challenger.batch_set}.json",
                                 choice.to_dict())}).version
    crash_point("register")
    out["registered_version"] = version
    promote_kwargs = {"reason": f"{decision.action}: {result.reason}", "metrics": metrics,
                      "batches": [b["id"] for b in pending],
                      "expected_from": champion.version if champion else None}
    if route_to == "promote":
        hold_point("promote")
        try:
            with steps.step("promote"), promotion_lock(reg.model_name):
                promote_t(reg, version, **promote_kwargs)
        except promotion.PromotionError as exc:  # another cycle promoted meanwhile
            get_run_logger().warning("v%s registered, not promoted: %s", version, exc)
            out["promotion_refused"] = str(exc)
            return out
        crash_point("promote")
        out["promoted_version"] = version
    elif route_to == "challenger":
        promotion.set_alias(reg, "challenger", version)
    elif route_to == "ask":
        params["engine"].close()  # no idle LocalCluster while a person takes hours to answer
        rows = [{"metric": k, "champion": champ_metrics.get(k), "challenger": v}
                for k, v in ch_metrics.items()]
        description = reports.approval_markdown(
            reg.model_name, version, result.verdict, result.reason, rows,
            [r.to_dict() for r in results], _links(reg, version, monitor_runs, home))
        out["approval"] = _ask_and_promote(reg, version, description,
                                           params["approval_timeout_seconds"], promote_kwargs)
        if out["approval"] == "approved":
            out["promoted_version"] = version
    return out


@flow(name="greenlight-cycle", log_prints=True)
def cycle(dataset: str = "synthetic", policy: Policy = "auto",
          thresholds: Thresholds = Thresholds(), training: Training = Training(),
          force_retrain: bool = False, approval_timeout_seconds: int = 86_400,
          home: str | None = None, harvest_served: bool = True,
          scale: Scale = Scale()) -> dict[str, Any]:
    """Harvest, ingest what landed, validate, monitor against the champion, decide, retrain,
    promote.

    With `harvest_served`, served predictions whose labels have landed first become a batch
    in landing (tasks/harvest.py), so the loop trains on what the service saw. With policy
    manual or partial the run may pause for approval in the Prefect UI; an unanswered
    request times out after `approval_timeout_seconds` and counts as a rejection.
    Steps whose input reaches `scale.dask_min_rows` rows run on Dask (flows/scaled.py)."""
    with scaled.engine(scale) as engine:
        return _cycle(dataset, policy, thresholds, training, force_retrain,
                      approval_timeout_seconds, home, harvest_served, engine)


def _cycle(dataset: str, policy: Policy, thresholds: Thresholds, training: Training,
           force_retrain: bool, approval_timeout_seconds: int, home: str | None,
           harvest_served: bool, engine: DaskEngine) -> dict[str, Any]:
    logger = get_run_logger()
    refusal = approval_needs_server(policy, PREFECT_API_URL.value())
    if refusal:
        raise ValueError(refusal)
    spec, state = load_spec(dataset), Home.from_env(home).ensure()
    reg = registry_for(state, spec)
    steps = Steps()
    before = manifest.load(state.manifest)
    with ingest.intake_lock(state):
        with steps.step("harvest") as step:
            harvested = harvest_t(state, spec, reg.model_name) if harvest_served else None
            step.rows_out = harvested.rows if harvested else 0
        with steps.step("ingest+validate") as step:
            quarantined = _intake(state, spec, engine)
            step.rows_in, step.rows_out = _intake_rows(before, manifest.load(state.manifest))
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
        return {"batches": [], "quarantined": quarantined, "timings": steps.timings,
                "harvested": harvested.to_dict() if harvested else None}
    with steps.step("monitor", rows_in=sum(b["rows"] for b in pending)):
        results, monitor_runs = (_monitor(state, reg, spec, champion, pending, thresholds,
                                          engine) if champion else ([], {}))
    crash_point("monitor")
    decision = decide(results + late, has_champion=champion is not None,
                      drift_share=thresholds.drift_share, max_decay=thresholds.max_decay,
                      force=force_retrain, acknowledged=_acknowledged(champion))
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
        outcome = _retrain(state, reg, spec, champion, train_on, decision, results, monitor_runs,
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
    summary = {"batches": [b["id"] for b in pending], "decision": decision.action,
               "reasons": decision.reasons, **outcome, "quarantined": quarantined,
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
                                        links=_links(reg, outcome.get("registered_version"),
                                                     monitor_runs, state),
                                        served=[s.to_dict() for s in served]),
        description="What this cycle saw and decided")
    return summary
