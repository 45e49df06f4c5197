"""The retraining half of a cycle: recipe, train, gate, refit, register, then route the
challenger by policy (promote, ask a person, shadow, or nothing). Ordering and decisions
only; the work is in tasks/ and the registry moves in registry/."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from core.faults import crash_point, hold_point
from core.steps import Steps
from flows import scaled
from flows.approval import Approval, wait_for_answer
from flows.params import Training
from flows.policies import route, route_note
from registry import promote as promotion
from registry import register as registration
from registry import versions
from registry.locks import promotion_lock
from registry.store import Registry
from tasks.data import labels, lake, manifest
from tasks.data.home import Home
from tasks.data.spec import DatasetSpec
from tasks.gate.decide import Decision, champion_stale
from tasks.gate.gate import bootstrap_blocker, gate
from tasks.monitoring.monitor import MonitorResult
from tasks.publish import reports
from tasks.training import recipe, train

# No cache key: Prefect's default one hashes every input (the history frame, and each
# LightGBM model pickled to text), ~0.15 s of CPU per retrain, for results that are never
# persisted, so never reused.
recipe_t = task(recipe.choose_before_gate, name="recipe", cache_policy=NO_CACHE)
train_t = task(train.train_challenger, name="train", cache_policy=NO_CACHE)
refit_t = task(recipe.refit_challenger, name="refit", cache_policy=NO_CACHE)
gate_t = task(gate, name="gate", cache_policy=NO_CACHE)
register_t = task(registration.register, name="register", retries=2, retry_delay_seconds=2,
                  cache_policy=NO_CACHE)
# A refusal (the champion moved meanwhile) is a decision, returned, never retried; a store
# that is down still raises, and gets the retries.
try_promote_t = task(promotion.try_promote, name="promote", retries=2, retry_delay_seconds=2,
                     cache_policy=NO_CACHE)

BATCH_IDS_TAG, CHAMPION_SEEN_TAG = "greenlight.batch_ids", "greenlight.champion_version"
ACK_TAG = "greenlight.drift_acknowledged"
BASELINE_TAG = "greenlight.baseline_metric"


def acknowledged(champion: versions.VersionInfo | None) -> frozenset[str]:
    """Drift kinds the champion has answered: a retrain on them found nothing better."""
    return frozenset(filter(None, (champion.tags.get(ACK_TAG, "") if champion else "").split(",")))


def links(reg: Registry, version: int | None, monitor_runs: dict[str, str],
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
                     promote_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Pause for a person; approve promotes, reject or timeout leave the champion alone.

    Returns the outcome for the cycle's record: `approval` (approved, rejected, timed out,
    or approved but not promoted), `approval_by` and `approval_reason`. A timeout is a
    decision, so the run goes on to end Completed."""
    logger = get_run_logger()
    answer = wait_for_answer(Approval.with_initial_data(description=description),
                             timeout_s=timeout_s, key=f"approve-v{version}")
    if answer is None:
        reason = f"no answer within {timeout_s} s"
        promotion.record_decision(reg, version, outcome="timed out", by=None, reason=reason)
        logger.warning("approval of v%s timed out: treated as a rejection", version)
        return {"approval": "timed out", "approval_by": None, "approval_reason": reason}
    said = {"approval_by": answer.approver, "approval_reason": answer.reason}
    if not answer.approved:
        promotion.record_decision(reg, version, outcome="rejected", by=answer.approver,
                                  reason=answer.reason)
        return {"approval": "rejected", **said}
    promotion.record_decision(reg, version, outcome="approved", by=answer.approver,
                              reason=answer.reason)
    why = f"approved by {answer.approver}: {answer.reason or 'no reason given'}"
    with promotion_lock(reg.model_name):
        moved = try_promote_t(reg, version, by=answer.approver,
                              **{**promote_kwargs, "reason": why})
    if "refused" in moved:  # the champion moved while the person decided: one line, no retry
        logger.warning("approved, but not promoted: %s", moved["refused"])
        return {"approval": "approved, not promoted (champion moved)", **said,
                "promotion_refused": moved["refused"]}
    return {"approval": "approved", **said}


def _recipe(history: pd.DataFrame, spec: DatasetSpec, training: Training, gate_rows: int,
            steps: Steps) -> recipe.RecipeChoice:
    """The recipe the challenger trains with: backtested, or fixed by the user or spec."""
    fixed = recipe.Recipe(training.half_life_days or spec.training.half_life_days,
                          training.window_days or spec.training.window_days)
    if not training.auto_recipe or training.half_life_days or training.window_days:
        return recipe.RecipeChoice(fixed, pd.DataFrame(), spec.primary_metric,
                                   reason="fixed by the flow parameters or the dataset spec")
    with steps.step("recipe", rows_in=len(history)):
        choice = recipe_t(history, spec, gate_rows=gate_rows, batch_column=lake.BATCH_COLUMN)
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


def retrain(home: Home, reg: Registry, spec: DatasetSpec, champion: versions.VersionInfo | None,
             pending: list[dict], decision: Decision, results: list[MonitorResult],
             monitor_runs: dict[str, str], params: dict[str, Any],
             steps: Steps) -> dict[str, Any]:
    """Train, gate, register and route by policy; the champion moves only through promote."""
    training: Training = params["training"]
    accepted = [b["id"] for b in manifest.load(home.manifest).values() if b["status"] == "accepted"]
    history = labels.attach(lake.read_batches(home.lake, accepted), home, spec)
    history = history[history[spec.target].notna()]  # train and gate on labelled rows only
    gate_rows = int(training.gate_fraction * max(b["rows"] for b in pending))
    # Before the backtest: rows that cannot give a first model need no recipe either.
    blocked = bootstrap_blocker(history, spec, gate_rows) if champion is None else None
    if blocked:  # the cycle records it and ends with it as one line (flows/cycle.py)
        get_run_logger().warning(blocked)
        return {"no_champion": blocked, "verdict": "not trained", "route": "none"}
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
                        min_delta=training.min_delta, min_rows=training.gate_min_rows,
                        slice_feature=spec.slice_feature,
                        stale=champion_stale(decision, refresh_on=training.refresh_on,
                                             newer=_newer(reg, champion, challenger)))
    create_table_artifact(key=f"greenlight-gate-{spec.name.replace('_', '-')}",
                          table=result.to_rows(), description=result.reason)
    route_to = route(params["policy"], result.verdict)
    note = route_note(params["policy"], result.verdict, route_to)
    get_run_logger().info(note)
    out: dict[str, Any] = {"gate": result.to_dict(), "verdict": result.verdict,
                           "route": route_to, "route_note": note, "recipe": choice.best.name,
                           "recipe_reason": choice.reason,
                           "challenger_metric": result.challenger,
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
    if route_to == "none" and champion is None:  # the cycle ends with it (flows/cycle.py)
        out["no_champion"] = f"no first champion: the gate said {result.reason}"
    if route_to == "none":
        if champion is not None and result.champion is not None:
            # The champion held on the newest data: acknowledge the drift, and its score there
            # becomes the baseline decay is measured against.
            kinds = (decision.kinds - {"decay", "forced"}) | acknowledged(champion)
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
        with steps.step("promote"), promotion_lock(reg.model_name):
            moved = try_promote_t(reg, version, **promote_kwargs)
        if "refused" in moved:  # the champion moved meanwhile: a decision, no traceback
            get_run_logger().warning("v%s registered, not promoted: %s", version,
                                     moved["refused"])
            out["promotion_refused"] = moved["refused"]
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
            [r.to_dict() for r in results], links(reg, version, monitor_runs, home))
        out.update(_ask_and_promote(reg, version, description,
                                    params["approval_timeout_seconds"], promote_kwargs))
        get_run_logger().info("approval of v%s: %s", version, reports.approval_line(out))
        if out["approval"] == "approved":
            out["promoted_version"] = version
    return out
