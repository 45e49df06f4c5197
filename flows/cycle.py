"""One cycle of the loop as a Prefect flow: the order of the steps and the decisions only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.settings import PREFECT_API_URL

from core.clean import json_safe
from core.events import run_link
from core.faults import crash_point, hold_point
from core.names import BATCH_IDS_TAG, CHAMPION, CHAMPION_SEEN_TAG, monitoring_experiment
from core.steps import Steps
from flows import heartbeat
from flows.params import Guardrails, Scale, Thresholds, Training
from flows.policies import Policy, approval_needs_server
from flows.retrain import RetrainOptions, retrain
from registry import audit, probation, versions
from registry.locks import cycle_claim
from registry.store import Registry, for_dataset
from registry.tags import acknowledged, baseline_metric
from tasks.data import harvest, idle, ingest, labels, lake, late, manifest, predictions, source
from tasks.data.home import Home
from tasks.data.spec import DatasetSpec, load_spec, suite_path
from tasks.data.validate import read_suite, split_label_checks, validate_frame
from tasks.gate import probation as baking
from tasks.gate.decide import Decision, decide
from tasks.monitoring import alarms
from tasks.monitoring.monitor import MonitorResult
from tasks.monitoring.served import ServedWindow, served_window
from tasks.monitoring.suspect import collapsed, label_skill, learnable_skill, suspect_reason
from tasks.monitoring.watch import Judge, monitor_stored, raised_alarms, watch_for
from tasks.publish import reports
from tasks.publish.links import links
from tasks.publish.monitoring import Target, log_late, log_served, publish_monitored
from tasks.scale import dispatch
from tasks.scale.distributed import DaskEngine

scan_t = task(ingest.scan, name="ingest")
read_t = task(ingest.try_read, name="read")
validate_t = task(validate_frame, name="validate")
accept_t = task(ingest.accept, name="accept")
reject_t = task(ingest.reject, name="quarantine")
file_t = task(dispatch.file, name="file")
monitor_t = task(monitor_stored, name="monitor")
publish_t = task(publish_monitored, name="publish")
harvest_t = task(harvest.harvest, name="harvest")
served_t = task(served_window, name="served predictions")
labels_t = task(labels.implausible, name="label check")
heartbeat.off_unless_asked()


def registry_for(home: Home, spec: DatasetSpec) -> Registry:
    return for_dataset(spec.name, home.root, home.tracking_uri)


def _intake(home: Home, spec: DatasetSpec, engine: DaskEngine) -> tuple[list[str], list[str]]:
    """Every batch a source offers (landing/, and the dataset's SQL table or remote landing:
    tasks/data/source.py) becomes an accepted batch or a quarantined one; none is lost.

    Returns the one-line reasons of what was quarantined and a source's reports (late rows
    of a SQL table); each is also logged, so the user sees it. A file still being written
    stays in landing for the next cycle. A source moves past a batch only once its decision
    is in the manifest."""
    logger = get_run_logger()
    suite, _ = split_label_checks(read_suite(suite_path(spec.name)), spec.target)
    known = manifest.load(home.manifest)
    quarantined: list[str] = []
    reported: list[str] = []
    for i, src in enumerate(source.for_cycle(home, spec, scan_t)):
        found = src.take()
        if i == 0:  # landing/, as before
            crash_point("ingest")
        for name in found.busy:
            logger.warning("%s: still being written; left in landing for the next cycle", name)
        for note in found.notes:
            logger.warning(note)
            reported.append(note)
        for landed in found.ready:
            quarantined += _intake_one(home, spec, engine, suite, known, landed)
            src.commit(landed)
    return quarantined, reported


def _intake_one(home: Home, spec: DatasetSpec, engine: DaskEngine, suite: Any,
                known: dict[str, dict], landed: ingest.LandedFile) -> list[str]:
    """One batch read, validated and filed (or found to repeat one): what was quarantined."""
    logger = get_run_logger()
    if landed.batch_id in known:
        twin = known[landed.batch_id]
        ingest.file_duplicate(home, landed, twin.get("status"))
        logger.warning("%s: same bytes as %s (batch %s, %s); kept beside it, not processed "
                       "again", landed.path.name, twin.get("file"), landed.batch_id,
                       twin.get("status"))
        return []
    rows = ingest.landed_rows(landed.path)  # from the footer or line ends: nothing read
    if rows is not None and engine.wants(rows):  # the workers read, check, write
        staged = dispatch.stage(engine, home, landed, spec, suite, rows)
        crash_point("validate")
        reason = file_t(home, landed, spec, staged)
        if reason:
            logger.warning("quarantined %s", reason)
        return _filed(home, landed, known)
    frame, error = read_t(landed.path, spec)
    if error:
        reason = reject_t(home, landed, error, dataset=spec.name)
    else:
        where = {"source": landed.path.name, "time_column": spec.time_column}
        checked = validate_t(frame, suite, **where)
        crash_point("validate")
        if checked.success:
            accept_t(home, landed, frame, spec)
            return _filed(home, landed, known)
        reason = reject_t(home, landed, checked.reason, checked.to_dict(),
                          checked.to_markdown(), rows=len(frame), dataset=spec.name)
    known[landed.batch_id] = {"file": landed.path.name, "status": "quarantined"}
    logger.warning("quarantined %s", reason)
    return [reason]


def _filed(home: Home, landed: ingest.LandedFile, known: dict[str, dict]) -> list[str]:
    """What filing decided, from the manifest: accept may refuse (a file that changed
    meanwhile stays in landing; the same rows as a batch in the lake are quarantined,
    already logged there)."""
    record = manifest.load(home.manifest).get(landed.batch_id)
    if record is None:
        return []
    known[landed.batch_id] = {"file": landed.path.name, "status": record.get("status")}
    return [record.get("reason")] if record.get("status") == "quarantined" else []


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
        frame = late.labelled(home, spec, batch["id"])
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


def _hold_suspects(home: Home, reg: Registry, spec: DatasetSpec, judge: Judge,
                   pending: list[dict], results: list[MonitorResult],
                   thresholds: Thresholds) -> list[str]:
    """Hold every monitored batch whose labels disagree with the champion far more than its
    features drift (tasks/monitoring/suspect.py), as `_hold` holds implausible ones: the
    one-line reasons, each also logged. A batch a person released is not held again.

    A champion on probation may be the one that is wrong (a model approved in a hurry that
    learned the target backwards): a batch that @previous still predicts is evidence for
    probation, never a suspect."""
    previous = cache(lambda: _previous_model(reg))
    released = {b["id"] for b in pending if b.get("released_by")}
    files = {b["id"]: b.get("file") or b["id"] for b in pending}
    held = []
    for result in results:
        if result.batch_id in released or result.not_judged or result.decay is None:
            continue
        frame = late.labelled(home, spec, result.batch_id)
        skill = label_skill(judge.model, frame, spec)
        if collapsed(skill) and previous() is not None and not collapsed(
                label_skill(previous(), frame, spec)):
            continue  # @previous agrees with these labels: probation judges the champion
        learnable = learnable_skill(frame, spec) if collapsed(skill) else None
        reason = suspect_reason(skill, learnable, drift_share=result.drift_share,
                                drifted=result.adversarial_drifted,
                                max_drift_share=thresholds.drift_share,
                                source=files[result.batch_id])
        if reason is None:
            continue
        manifest.hold(home.manifest, result.batch_id, reason)
        line = (f"held batch {result.batch_id}: {reason}; to train on it anyway: greenlight "
                f"release {result.batch_id[:12]} --by NAME --reason TEXT")
        get_run_logger().warning(line)
        held.append(line)
    return held


def _previous_model(reg: Registry) -> Any | None:
    """@previous's model while the champion is on probation, else None."""
    on = probation.current(reg)
    return versions.load_model(reg, on.previous) if on and on.previous else None


def _target(reg: Registry, home: Home) -> Target:
    """Where this model's monitoring is published (the experiment is made on first use)."""
    return Target(reg.tracking_uri, reg.experiment_id(monitoring_experiment(reg.model_name)),
                  home.evidently)


def _judge(reg: Registry, spec: DatasetSpec, champion: versions.VersionInfo) -> Judge:
    """The champion as monitoring needs it, read from the registry once a cycle (the
    reference only where drift is measured: `_monitor`)."""
    return Judge(champion.version, versions.load_model(reg, champion.version),
                 baseline_metric(champion, spec.primary_metric))


def _monitor(home: Home, reg: Registry, spec: DatasetSpec, judge: Judge,
             champion: versions.VersionInfo, pending: list[dict], thresholds: Thresholds,
             engine: DaskEngine) -> tuple[list[MonitorResult], dict[str, str]]:
    """Each pending batch against the champion, logged and published. On Dask (a batch of
    at least `scale.dask_min_rows` rows, counted from the lake's footers) the workers read
    its partition and give the input metrics and a sample of the whole batch."""
    watch = watch_for(replace(judge, reference=versions.load_reference(reg, champion)),
                      thresholds, spec)
    target, results, runs = _target(reg, home), [], {}
    for batch in pending:
        # On Dask the workers read the lake partition; `frame` is then the batch's sample.
        frame, inputs = (dispatch.profile_stored(engine, home, spec, batch["id"], watch.ranges)
                         if engine.wants(lake.partition_rows(home.lake, batch["id"]))
                         else (late.labelled(home, spec, batch["id"]), None))
        result = monitor_t(batch, frame, watch, spec, home.reports, inputs=inputs)
        runs[batch["id"]] = publish_t(target, batch, frame, result, spec, judge.version,
                                      thresholds.model_dump(), home.reports)
        home.keep(home.reports / batch["id"])
        results.append(result)
    return results, runs


def _served(home: Home, reg: Registry, spec: DatasetSpec,
            champion: versions.VersionInfo | None) -> list[predictions.ServedStats]:
    """Output metrics of what the service answered since the last cycle, per version and
    variant, logged as one `served-…` run in the monitoring experiment."""
    window: ServedWindow = served_t(home, spec, reg.model_name)
    if window.stats:
        log_served(_target(reg, home), window, champion.version if champion else None)
    predictions.mark_monitored(home, window.until)
    return window.stats


def _late_labels(home: Home, reg: Registry, spec: DatasetSpec,
                 judge: Callable[[], Judge]) -> list[MonitorResult]:
    """Decay of monitored batches whose labels landed since (`judge` loads the champion when
    one waits): each logged to the monitoring experiment, then recorded in the manifest."""
    found = late.late_results(home, spec, lambda: (judge().model, judge().registered))
    target = _target(reg, home) if found else None
    for batch, result in found:
        log_late(target, batch, result, spec, judge().version)
        late.record_late(home, batch, result, judge().registered)
    return [result for _, result in found]


def _intake_rows(before: dict[str, dict], after: dict[str, dict]) -> tuple[int, int]:
    """Rows that arrived this run and rows accepted, from the manifest's new records."""
    new = [b for k, b in after.items() if k not in before]
    return (sum(b.get("rows") or 0 for b in new),
            sum(b.get("rows") or 0 for b in new if b.get("status") == "accepted"))


def _newest_accepted(home: Home) -> list[dict]:
    accepted = [b for b in manifest.load(home.manifest).values() if b.get("status") == "accepted"]
    return accepted[-1:]


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
            "decay": result.decay, "not_judged": result.not_judged,
            "segment_note": result.segment_note}


def _judged_against(reg: Registry, pending: list[dict]) -> versions.VersionInfo | None:
    """The champion these batches are judged against: the live one, unless a run on the
    same batches crashed after registering its challenger. Then it is the champion that run
    saw, so the re-run reaches the same decision and finds its registration (and promotion)
    already done, instead of judging its own batches against the model they produced."""
    live = versions.by_alias(reg, CHAMPION)
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


def _take_in(state: Home, spec: DatasetSpec, reg: Registry, steps: Steps, min_rows: int,
             harvest_served: bool, engine: DaskEngine) -> dict[str, Any]:
    """Harvest, ingest+validate and the label check, under the intake lock."""
    before = manifest.load(state.manifest)
    with ingest.intake_lock(state):
        with steps.step("harvest") as step:
            harvested = harvest_t(state, spec, reg.model_name) if harvest_served else None
            step.rows_out = harvested.rows if harvested else 0
        with steps.step("ingest+validate") as step:
            quarantined, reported = _intake(state, spec, engine)
            step.rows_in, step.rows_out = _intake_rows(before, manifest.load(state.manifest))
        with steps.step("label check"):
            held = _hold(state, spec, min_rows)
    return {"quarantined": quarantined, "held": held, "sources": reported,
            "harvested": harvested.to_dict() if harvested else None}


def _record(state: Home, reg: Registry, policy: Policy, batches: list[dict],
            pending: list[dict], decision: Decision, results: list[MonitorResult],
            outcome: dict[str, Any], raised: list[alarms.Alarm], events: list[str],
            steps: Steps) -> None:
    """The decision on each batch's manifest record, and the cycle as a pipeline run."""
    by_id = {r.batch_id: {k: v for k, v in r.to_dict().items() if k != "batch_id"}
             for r in results}
    for batch in batches:
        manifest.append(state.manifest, batch["id"], decision=decision.action,
                        reasons=decision.reasons, **by_id.get(batch["id"], {}),
                        **{k: v for k, v in outcome.items() if k not in ("gate", "why")},
                        gate=outcome.get("gate", {}).get("reason"), timings=steps.timings,
                        alarms=sorted({a.kind for a in raised if a.batch_id == batch["id"]}))
    reports.log_run(reg.tracking_uri, reg.experiment_id(f"{reg.model_name}-pipeline"),
                    f"cycle-{policy}", metrics=steps.mlflow_metrics(),
                    tags={"greenlight.decision": decision.action, "greenlight.policy": policy,
                          "greenlight.batch_ids": ",".join(b["id"] for b in pending),
                          "greenlight.events": ",".join(events)})


bake_t = task(probation.bake, name="bake", retries=2, retry_delay_seconds=2)
checked_t = task(probation.checked, name="probation", retries=2, retry_delay_seconds=2)
rollback_t = task(probation.try_auto_rollback, name="auto-rollback", retries=2,
                  retry_delay_seconds=2)


def _probation(home: Home, reg: Registry, spec: DatasetSpec, pending: list[dict], seen: Seen,
               thresholds: Thresholds, training: Training,
               guardrails: Guardrails) -> dict[str, Any] | None:
    """A champion on probation is judged against @previous on what is new (its newly
    labelled batches, its served predictions) and rolled back, baked, or held."""
    on = probation.current(reg)
    if on is None or on.previous is None or not guardrails.baking_batches:
        return None
    ids = [b["id"] for b in pending] + [r.batch_id for r in seen.late]
    rows, unlabelled, batches = baking.new_rows(
        {b: late.labelled(home, spec, b) for b in ids}, spec, on.judged + on.decided_on)
    span = replace(on, judged=on.judged + batches)
    champion, previous = (versions.load_model(reg, v) for v in (on.version, on.previous))
    verdict = baking.judge(
        champion, previous, rows, spec, min_delta=training.min_delta,
        min_rows=training.gate_min_rows,
        failed_share=baking.failed_share(seen.served, on.version),
        max_failed=thresholds.max_failed_predictions,
        span_over=span.over(guardrails.baking_batches, guardrails.baking_hours),
        estimates=baking.estimate_pair(champion, previous, unlabelled))
    said = dict(reason=verdict.reason, batches=batches, figures=verdict.figures)
    refused = None
    if verdict.action == "rollback":
        refused = rollback_t(reg, on.version, dataset=spec.name, link=run_link(),
                             **said).get("refused")
    elif verdict.action == "baked":
        bake_t(reg, on.version, **said)
    elif batches:
        checked_t(reg, on.version, **said)
    get_run_logger().info("probation of v%s: %s (%s)", on.version, verdict.action,
                          verdict.reason)
    return {"version": on.version, "previous": on.previous, "action": verdict.action,
            "reason": verdict.reason, "batches": batches, "refused": refused,
            "left": span.left(guardrails.baking_batches, guardrails.baking_hours)}


def _nothing_new(seen: Seen, steps: Steps) -> dict[str, Any]:
    """The summary of a cycle with nothing to decide on: what intake quarantined or held."""
    return {"batches": [], **{k: seen.taken[k] for k in ("quarantined", "held", "sources")},
            "timings": steps.timings, "harvested": seen.taken["harvested"]}


def _rolled_back(seen: Seen) -> bool:
    return bool(seen.probation and seen.probation["action"] == "rollback")


@dataclass
class Seen:
    """What a cycle saw, for its records: intake, monitored and late-labelled batches, the
    served predictions, the alarms, and the monitoring runs (for links)."""

    taken: dict[str, Any]
    results: list[MonitorResult] = field(default_factory=list)
    late: list[MonitorResult] = field(default_factory=list)
    served: list[predictions.ServedStats] = field(default_factory=list)
    raised: list[alarms.Alarm] = field(default_factory=list)
    monitor_runs: dict[str, str] = field(default_factory=dict)
    probation: dict[str, Any] | None = None
    names: dict[str, str] = field(default_factory=dict)  # batch id -> file name (or SQL slice)

    def named(self, results: list[MonitorResult]) -> list[dict[str, Any]]:
        """Results as the artifact shows them: each with its file name beside its id."""
        return [{**r.to_dict(), "file": self.names.get(r.batch_id)} for r in results]


def _summary(state: Home, pending: list[dict], decision: Decision, outcome: dict[str, Any],
             policy: Policy, champion: versions.VersionInfo | None, seen: Seen,
             events: list[str], steps: Steps) -> dict[str, Any]:
    """The cycle's JSON summary: what `greenlight run` prints as one line and keeps."""
    labelled = list(manifest.load(state.manifest).values()) if seen.late else []
    return {"batches": [b["id"] for b in pending], "files": [b.get("file") for b in pending],
            "decision": decision.action, "reasons": decision.reasons, **outcome,
            "policy": policy, "champion_version": champion.version if champion else None,
            "monitored": [_seen(r, pending, late=False) for r in seen.results]
            + [_seen(r, labelled, late=True) for r in seen.late],
            "quarantined": seen.taken["quarantined"], "held": seen.taken["held"],
            "sources": seen.taken["sources"],
            "timings": steps.timings, "alarms": [a.to_dict() for a in seen.raised],
            "events": events, "late_labels": [r.batch_id for r in seen.late],
            "probation": seen.probation,
            "served": [s.to_dict() for s in seen.served], "harvested": seen.taken["harvested"]}


def _show(state: Home, reg: Registry, spec: DatasetSpec, decision: Decision, seen: Seen,
          outcome: dict[str, Any], steps: Steps) -> None:
    """What this cycle saw and decided, as the Prefect artifact a person opens first."""
    create_markdown_artifact(
        key=f"greenlight-cycle-{spec.name.replace('_', '-')}",
        markdown=reports.cycle_markdown(spec.name, decision.action, decision.reasons,
                                        seen.named(seen.results), outcome,
                                        steps.timings, reg.tracking_uri, steps=steps.rows(),
                                        alarms=[a.to_dict() for a in seen.raised],
                                        late=seen.named(seen.late),
                                        links=links(reg, outcome.get("registered_version"),
                                                    seen.monitor_runs, state, seen.names),
                                        served=[s.to_dict() for s in seen.served],
                                        held=seen.taken["held"]),
        description="What this cycle saw and decided")


@flow(name="greenlight-cycle", log_prints=True)
def cycle(dataset: str = "synthetic", policy: Policy = "auto",
          thresholds: Thresholds = Thresholds(), training: Training = Training(),
          force_retrain: bool = False, approval_timeout_seconds: int = 86_400,
          home: str | None = None, harvest_served: bool = True,
          scale: Scale = Scale(), guardrails: Guardrails = Guardrails()) -> dict[str, Any]:
    """Harvest, ingest what landed, validate, monitor against the champion, decide, retrain,
    promote.

    With `harvest_served`, served predictions whose labels have landed first become a batch
    in landing (tasks/data/harvest.py), so the loop trains on what the service saw. With policy
    manual or partial the run may pause for approval in the Prefect UI; an unanswered
    request times out after `approval_timeout_seconds` and counts as a rejection.
    Steps whose input reaches `scale.dask_min_rows` rows run on Dask (tasks/scale/dispatch.py).
    One cycle of a dataset at a time has its batches (registry/locks.py); a second one started
    meanwhile says so and does nothing."""
    with cycle_claim(Home.from_env(home).ensure().root, dataset) as taken:
        if taken:
            get_run_logger().warning(taken)
            return {"batches": [], "taken": taken}
        hold_point("cycle")  # test-only: a second cycle starts while this one has the claim
        with dispatch.engine(**scale.model_dump()) as engine:
            return _cycle(dataset, policy, thresholds, training, force_retrain,
                          approval_timeout_seconds, home, harvest_served, engine, guardrails)


def _cycle(dataset: str, policy: Policy, thresholds: Thresholds, training: Training,
           force_retrain: bool, approval_timeout_seconds: int, home: str | None,
           harvest_served: bool, engine: DaskEngine,
           guardrails: Guardrails = Guardrails()) -> dict[str, Any]:
    refusal = approval_needs_server(policy, PREFECT_API_URL.value())
    if refusal:
        raise ValueError(refusal)
    spec, state, steps = load_spec(dataset), Home.from_env(home).ensure(), Steps()
    reg = registry_for(state, spec)
    labels_seen = idle.labels_fingerprint(state)  # before any step reads the feed
    seen = Seen(_take_in(state, spec, reg, steps, thresholds.min_rows, harvest_served, engine))
    # Intake needs no registry, so a landed batch is recorded (never lost) whatever MLflow's
    # state; a registry that lost what the promotion log names stops the cycle here, before
    # anything reads the champion or could bootstrap over it.
    audit.check(reg)
    pending = manifest.pending(state.manifest)
    champion = _judged_against(reg, pending)
    judge = cache(lambda: _judge(reg, spec, champion))
    with steps.step("late labels") as step:
        seen.late = _late_labels(state, reg, spec, judge) if champion else []
        step.rows_out = sum(r.labelled_rows for r in seen.late)
    with steps.step("served") as step:
        seen.served = _served(state, reg, spec, champion)
        step.rows_in = sum(s.count for s in seen.served)
    if not pending and not force_retrain and not seen.late and not seen.served:
        get_run_logger().info("nothing new in %s", state.landing)
        idle.remember_labels(state, spec.name, labels_seen)
        return _nothing_new(seen, steps)
    seen.names = {k: b.get("file") or k for k, b in manifest.load(state.manifest).items()}
    with steps.step("monitor", rows_in=sum(b["rows"] for b in pending)):
        if champion:
            seen.results, seen.monitor_runs = _monitor(state, reg, spec, judge(), champion,
                                                       pending, thresholds, engine)
    crash_point("monitor")
    if seen.results:
        suspects = _hold_suspects(state, reg, spec, judge(), pending, seen.results,
                                  thresholds)
        if suspects:
            seen.taken["held"] += suspects
            pending = manifest.pending(state.manifest)
            seen.results = [r for r in seen.results if r.batch_id in {b["id"] for b in pending}]
            if not pending and not force_retrain and not seen.late and not seen.served:
                idle.remember_labels(state, spec.name, labels_seen)  # all held
                return _nothing_new(seen, steps)
    with steps.step("probation"):
        seen.probation = _probation(state, reg, spec, pending, seen, thresholds, training,
                                    guardrails) if champion else None
    seen.raised = alarms.named(raised_alarms(seen.results + seen.late, seen.served,
                                             thresholds), seen.names)
    decision = decide(seen.results + seen.late, seen.raised, has_champion=champion is not None,
                      force=force_retrain, acknowledged=acknowledged(champion))
    # After a rollback the champion this cycle judged is gone: retrain from the next one.
    retraining = decision.retrain and policy != "monitor" and not _rolled_back(seen)
    # Alarms go out when they are raised: a retrain, or a pause for a person, never holds
    # them back, and they name the champion that was judged.
    events = alarms.emit(seen.raised, dataset=spec.name, policy=policy, model=reg.model_name,
                         champion_version=champion.version if champion else None,
                         retraining=retraining) if seen.raised else []
    # A forced run with nothing new (e.g. started by a drift event) retrains on the newest batch.
    train_on = pending or _newest_accepted(state)
    outcome: dict[str, Any] = {}
    if retraining and train_on:
        outcome = retrain(state, reg, spec, champion, train_on, decision, seen.results,
                          seen.monitor_runs, RetrainOptions(policy, training,
                                                            approval_timeout_seconds, engine),
                          steps)
    if seen.probation and outcome.get("promoted_version") and seen.probation["action"] == "hold":
        # the model judged on probation is no longer the champion: the line says so
        seen.probation["replaced_by"] = outcome["promoted_version"]
    _record(state, reg, policy, pending or (train_on if outcome else []), pending, decision,
            seen.results, outcome, seen.raised, events, steps)
    summary = _summary(state, pending, decision, outcome, policy, champion, seen, events, steps)
    _show(state, reg, spec, decision, seen, outcome, steps)
    idle.remember_labels(state, spec.name, labels_seen)
    if outcome.get("no_champion"):
        # The data cannot give a first champion yet: recorded on the batches above (status
        # shows it), and the run ends non-zero with the one line (`greenlight run`: exit 2).
        raise ValueError(outcome["no_champion"])
    return json_safe(summary)  # strict JSON: an undefined metric is null, never NaN
