"""The retraining half of a cycle: the retrain sequence (recipe, train, gate, refit, in
tasks/training/sequence.py), then register and route the challenger by policy (promote,
ask a person, shadow, or nothing). Ordering and decisions only; the work is in tasks/ and
the registry moves and tags in registry/."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from core.faults import crash_point, hold_point
from core.names import CHALLENGER
from core.steps import Steps
from flows.approval import Approval, wait_for_answer
from flows.params import Training
from flows.policies import Policy, route, route_note
from registry import cards, versions
from registry import promote as promotion
from registry import register as registration
from registry.locks import promotion_lock
from registry.store import Registry
from registry.tags import ChallengerTags, held_tags
from tasks.data import labels, lake, manifest
from tasks.data.home import Home
from tasks.data.spec import DatasetSpec
from tasks.gate import explain
from tasks.gate.decide import Decision
from tasks.gate.gate import GateResult, gate
from tasks.monitoring.monitor import MonitorResult
from tasks.publish import reports
from tasks.publish.links import links
from tasks.scale import dispatch
from tasks.scale.distributed import DaskEngine
from tasks.training import recipe, train
from tasks.training.sequence import Calls, Retrained, retrain_sequence

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


def _calls() -> Calls:
    """The sequence's steps as this module's Prefect tasks, looked up at call time (the
    overhead benchmark swaps them for their plain functions)."""
    return Calls(choose=recipe_t, train=train_t, gate=gate_t, refit=refit_t)


def _ask_and_promote(reg: Registry, version: int, description: str, timeout_s: int,
                     promote_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Pause for a person; approve promotes, reject or timeout leave the champion alone.

    Returns the outcome for the cycle's record: `approval` (approved, rejected, timed out,
    or approved but not promoted), `approval_by` and `approval_reason`. A timeout is a
    decision, so the run goes on to end Completed."""
    logger = get_run_logger()
    answer = wait_for_answer(Approval.with_initial_data(description=description),
                             timeout_s=timeout_s, key=f"approve-v{version}",
                             dataset=reg.dataset, version=version)
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


@dataclass(frozen=True)
class RetrainOptions:
    """How the cycle retrains, typed: the policy routes the verdict, `training` is the
    Prefect form's Training, the engine takes a training set too big for this process."""

    policy: Policy
    training: Training
    approval_timeout_seconds: int
    engine: DaskEngine


def _labelled_history(home: Home, spec: DatasetSpec) -> pd.DataFrame:
    """Every accepted batch with its labels attached; train and gate on labelled rows only."""
    accepted = [b["id"] for b in manifest.load(home.manifest).values() if b["status"] == "accepted"]
    history = labels.attach(lake.read_batches(home.lake, accepted), home, spec)
    return history[history[spec.target].notna()]


def _show(spec: DatasetSpec, done: Retrained) -> None:
    """The backtest table and the gate's verdict as Prefect artifacts, where a person looks."""
    choice, result = done.choice, done.result
    slug = spec.name.replace("_", "-")
    if not choice.table.empty:
        create_table_artifact(key=f"greenlight-recipe-{slug}", description=choice.reason,
                              table=choice.table.round(4).to_dict(orient="records"))
    get_run_logger().info("recipe %s (%s)", choice.best.name, choice.reason)
    create_table_artifact(key=f"greenlight-gate-{slug}", table=result.to_rows(),
                          description=result.reason)
    if done.refit_problems:
        get_run_logger().warning("refit failed its sanity checks (%s): registering the "
                                 "gated model", "; ".join(done.refit_problems))


def _tags(spec: DatasetSpec, decision: Decision, done: Retrained, policy: Policy,
          pending: list[dict], champion: versions.VersionInfo | None) -> ChallengerTags:
    result, choice = done.result, done.choice
    return ChallengerTags(
        dataset=spec.name, decision=decision.action, reasons=decision.reasons,
        verdict=result.verdict, gate_reason=result.reason, gain=result.gain,
        ci_low=result.ci_low, ci_high=result.ci_high, policy=policy, recipe=choice.best.name,
        recipe_reason=choice.reason, batch_ids=[b["id"] for b in pending],
        data_hash=done.challenger.data_hash,
        champion_seen=champion.version if champion else None,
        members=choice.member_weights(), backtest=choice.backtest_means())


def _gate_metrics(result: GateResult) -> dict[str, float]:
    return {**{f"gate_challenger_{k}": v for k, v in result.challenger_metrics.items()},
            **{f"gate_champion_{k}": v for k, v in result.champion_metrics.items()}}


def _rejected(reg: Registry, champion: versions.VersionInfo | None, decision: Decision,
              done: Retrained, metrics: dict[str, float], tags: ChallengerTags) -> None:
    """A challenger not promoted: its run is kept, unregistered. A champion that held on the
    newest data answers the drift, and its score there becomes the baseline for decay."""
    if champion is not None and done.result.champion is not None:
        registration.tag_version(reg, champion.version,
                                 held_tags(champion, decision.kinds, done.result.champion))
    reports.log_run(reg.tracking_uri, reg.experiment_id(f"{reg.model_name}-training"),
                    f"rejected-{done.challenger.batch_set[:8]}", metrics=metrics,
                    tags=tags.to_tags(), params=done.challenger.params)


def _register(home: Home, reg: Registry, done: Retrained, metrics: dict[str, float],
              tags: ChallengerTags, steps: Steps, why_csv: Any = None) -> int:
    """The challenger as a model version, with its reference, recipe and lineage tags."""
    challenger = done.challenger
    tags = replace(tags, trained_until=challenger.params["trained_until"])
    hold_point("register")
    with steps.step("register"):
        sample = challenger.model.example(challenger.split.gate.head(5))
        version = register_t(reg, python_model=challenger.model, input_example=sample,
                             output_example=challenger.model.predict(None, sample),
                             reference=challenger.reference, batch_set=challenger.batch_set,
                             params=challenger.params, metrics=metrics, tags=tags.to_tags(),
                             experiment=f"{reg.model_name}-training",
                             artifacts={"recipe": reports.write_json(
                                 home.reports / "recipes" / f"{challenger.batch_set}.json",
                                 done.choice.to_dict()),
                                 **({"why": why_csv} if why_csv else {})}).version
    crash_point("register")
    return version


def _promote(reg: Registry, version: int, promote_kwargs: dict[str, Any],
             steps: Steps) -> dict[str, Any]:
    """Move the champion under the lock; a refusal (it moved meanwhile) is a decision."""
    hold_point("promote")
    with steps.step("promote"), promotion_lock(reg.model_name):
        moved = try_promote_t(reg, version, **promote_kwargs)
    if "refused" in moved:  # the champion moved meanwhile: a decision, no traceback
        get_run_logger().warning("v%s registered, not promoted: %s", version, moved["refused"])
        return {"promotion_refused": moved["refused"]}
    crash_point("promote")
    return {"promoted_version": version}


def _ask(home: Home, reg: Registry, version: int, result: GateResult,
         results: list[MonitorResult], monitor_runs: dict[str, str], options: RetrainOptions,
         promote_kwargs: dict[str, Any], names: dict[str, str],
         why: dict[str, Any] | None = None) -> dict[str, Any]:
    """Put the challenger to a person with the evidence, and promote on approval. Each
    batch is named by its file (`names`: batch id -> file name), as `status` names it."""
    options.engine.close()  # no idle LocalCluster while a person takes hours to answer
    rows = [{"metric": k, "champion": result.champion_metrics.get(k), "challenger": v}
            for k, v in result.challenger_metrics.items()]
    description = reports.approval_markdown(
        reg.model_name, version, result.verdict, result.reason, rows,
        [{**r.to_dict(), "file": names.get(r.batch_id)} for r in results],
        links(reg, version, monitor_runs, home, names), why=why)
    out = _ask_and_promote(reg, version, description, options.approval_timeout_seconds,
                           promote_kwargs)
    get_run_logger().info("approval of v%s: %s", version, reports.approval_line(out))
    return {**out, "promoted_version": version} if out["approval"] == "approved" else out


def retrain(home: Home, reg: Registry, spec: DatasetSpec, champion: versions.VersionInfo | None,
            pending: list[dict], decision: Decision, results: list[MonitorResult],
            monitor_runs: dict[str, str], options: RetrainOptions,
            steps: Steps) -> dict[str, Any]:
    """Train, gate, register and route by policy; the champion moves only through promote."""
    history = _labelled_history(home, spec)
    champion_model = versions.load_model(reg, champion.version) if champion else None
    gate_rows = train.gate_window_rows(max(b["rows"] for b in pending),
                                       options.training.gate_fraction,
                                       options.training.gate_window_min_rows,
                                       options.training.gate_max_fraction)
    done = retrain_sequence(
        history, spec, options.training, gate_rows=gate_rows, decision=decision,
        champion=champion_model,
        champion_until=versions.trained_until(reg, champion) if champion else None,
        batch_column=lake.BATCH_COLUMN, steps=steps, calls=_calls(),
        refit_if=lambda result: route(options.policy, result.verdict) != "none",
        fitter=dispatch.fitter(options.engine, len(history)),
        new_batches=[b["id"] for b in pending])
    if done.blocked:  # the cycle records it and ends with it as one line (flows/cycle.py)
        get_run_logger().warning(done.blocked)
        return {"no_champion": done.blocked, "verdict": "not trained", "route": "none"}
    _show(spec, done)
    result = done.result
    route_to = route(options.policy, result.verdict)
    note = route_note(options.policy, result.verdict, route_to)
    get_run_logger().info(note)
    out: dict[str, Any] = {"gate": result.to_dict(), "verdict": result.verdict,
                           "route": route_to, "route_note": note,
                           "recipe": done.choice.best.name, "recipe_reason": done.choice.reason,
                           "challenger_metric": result.challenger,
                           "gate_champion_metric": result.champion}
    metrics, tags = _gate_metrics(result), _tags(spec, decision, done, options.policy, pending,
                                                 champion)
    why_csv = home.reports / "why" / done.challenger.batch_set / "disagreements.csv"
    why = explain.for_gate(champion_model, done.challenger.model, done.challenger.split.gate,
                           spec, result.slices, why_csv) if result.champion is not None else None
    if why is not None:
        out["why"] = {**why.to_dict(), "path": str(why_csv)}
    if route_to == "none":
        if champion is None:  # the cycle ends with it (flows/cycle.py)
            out["no_champion"] = f"no first champion: the gate said {result.reason}"
        _rejected(reg, champion, decision, done, metrics, tags)
        return out
    version = out["registered_version"] = _register(home, reg, done, metrics, tags, steps,
                                                    why_csv if why is not None else None)
    if why is not None:
        cards.explain(reg, version, why.text())
    promote_kwargs = {"reason": f"{decision.action}: {result.reason}", "metrics": metrics,
                      "batches": [b["id"] for b in pending],
                      "expected_from": champion.version if champion else None}
    if route_to == "promote":
        out.update(_promote(reg, version, promote_kwargs, steps))
    elif route_to == "challenger":
        promotion.set_alias(reg, CHALLENGER, version)
    elif route_to == "ask":
        out.update(_ask(home, reg, version, result, results, monitor_runs, options,
                        promote_kwargs, {b["id"]: b.get("file") or b["id"] for b in pending},
                        out.get("why")))
    return out
