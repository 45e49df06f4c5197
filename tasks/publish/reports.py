"""Put results where users look: MLflow runs (metrics + report artifacts) and Prefect artifacts."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from core.secrets import mask_url


def log_run(tracking_uri: str, experiment_id: str, run_name: str, *, metrics: dict[str, float],
            tags: dict[str, str], params: dict[str, Any] | None = None,
            artifacts: dict[str, Path] | None = None) -> str:
    """One finished MLflow run with its numbers and files; returns the run id for linking.

    Uses the client, not the fluent API, so it never changes process-wide MLflow state."""
    client = MlflowClient(tracking_uri=tracking_uri)
    run = client.create_run(experiment_id, run_name=run_name, tags=tags)
    try:
        now = int(time.time() * 1000)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None],
            params=[Param(k, str(v)) for k, v in (params or {}).items()],
            tags=[RunTag("mlflow.runName", run_name)])
        for sub, path in (artifacts or {}).items():
            if Path(path).is_dir():
                client.log_artifacts(run.info.run_id, str(path), artifact_path=sub)
            else:
                client.log_artifact(run.info.run_id, str(path), artifact_path=sub)
    except BaseException:  # a full disk, a store gone: the run ends FAILED, never RUNNING
        _end_failed(client, run.info.run_id)
        raise
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def _end_failed(client: MlflowClient, run_id: str) -> None:
    """Mark a run FAILED if the store still takes it; the caller's error is the one to tell."""
    try:
        client.set_terminated(run_id, status="FAILED")
    except Exception:  # noqa: BLE001, S110 (the store may be what failed)
        pass


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    """Keep a record beside the reports, then log the same file to MLflow."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """A markdown table for Prefect artifacts and quarantine reports."""
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4f}"
        if isinstance(v, list | tuple):
            v = ", ".join(map(str, v))
        return "" if v is None else str(v).replace("|", "\\|")

    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "".join("| " + " | ".join(cell(r.get(c)) for c in columns) + " |\n"
                          for r in rows)


def cycle_markdown(dataset: str, decision: str, reasons: list[str], batches: list[dict[str, Any]],
                   outcome: dict[str, Any], timings: dict[str, float], tracking_uri: str, *,
                   steps: list[dict[str, Any]] | None = None,
                   alarms: list[dict[str, Any]] | None = None,
                   late: list[dict[str, Any]] | None = None,
                   links: dict[str, str] | None = None,
                   served: list[dict[str, Any]] | None = None,
                   held: list[str] | None = None) -> str:
    """The cycle's story for the Prefect UI: what came in, what drifted, what was decided.

    `held` are the one-line reasons of batches held for implausible labels: said first,
    since a person has to act on them (`greenlight release`). Each batch is shown by its
    file name (`file`, or `name` on an alarm), the id only when it has none."""
    batches, late = [_named(b) for b in batches], [_named(b) for b in late or []]
    alarms = [_named(a, a.get("name")) for a in alarms or []]
    lines = [f"# greenlight cycle on `{dataset}`: **{decision}**", ""]
    if held:
        lines += ["## Held from training and gating", "", *[f"- {h}" for h in held], ""]
    lines += [f"- {r}" for r in reasons] or ["- every batch within thresholds"]
    lines += ["", "## Batches", "", markdown_table(batches, [
        "batch", "rows", "drift_share", "label_score", "prediction_score",
        "adversarial_auc", "champion_metric", "registered_metric", "decay"])]
    if any(b.get("feature_scores") for b in batches):
        lines += ["## Drift per feature", "", markdown_table(feature_rows(batches), [
            "feature", "batch", "method", "score", "drifted", "adversarial"])]
    if batches:
        lines += ["## Inputs and outputs", "", markdown_table([{
            **b, "worst_missing": _worst(b.get("missing_share")),
            "worst_out_of_range": _worst(b.get("out_of_range_share"))} for b in batches], [
            "batch", "rows", "labelled_rows", "worst_missing", "worst_out_of_range",
            "failed_predictions", "score_mean", "positive_share"])]
    if served:
        lines += ["## Served predictions since the last cycle", "", markdown_table(
            [{**s, "p05..p95": _spread(s.get("score_quantiles"))} for s in served], [
                "version", "variant", "count", "failed_share", "score_mean", "p05..p95",
                "positive_share", "needs_review_share", "latency_p50_ms", "latency_p99_ms"])]
    if alarms:
        lines += ["## Alarms (Prefect events)", "", markdown_table(alarms, [
            "event", "kind", "batch", "value", "threshold", "features"])]
    if late:
        lines += ["## Late labels", "", markdown_table(late, [
            "batch", "labelled_rows", "champion_metric", "registered_metric", "decay"])]
    if outcome.get("gate"):
        gate = outcome["gate"]
        lines += ["## Gate", "", f"{gate['reason']}", ""]
        if outcome.get("registered_version"):
            lines.append(f"- registered version **v{outcome['registered_version']}**")
        if outcome.get("route_note"):
            lines.append(f"- {outcome['route_note']}")
        if outcome.get("why"):
            lines += ["", "### Why: champion vs challenger on the gate window", "",
                      why_markdown(outcome["why"])]
        if outcome.get("approval"):
            lines.append(f"- approval: **{approval_line(outcome)}**")
        if outcome.get("promoted_version"):
            lines.append(f"- promoted to `@champion`: **v{outcome['promoted_version']}**")
    step_rows = steps or [{"name": k, "seconds": v} for k, v in timings.items()]
    lines += ["", "## Pipeline steps", "",
              markdown_table(step_rows, ["name", "seconds", "rows_in", "rows_out"]),
              f"MLflow store: `{mask_url(tracking_uri)}` (runs in the `-monitoring`, "
              "`-pipeline` and "
              "`-training` experiments; drift reports are artifacts of the monitoring runs)"]
    if links:
        lines += ["", "## Links", "", *link_lines(links)]
    return "\n".join(lines)


def _named(batch: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """`batch` with `batch`: its file name (or SQL slice) as a person knows it, else its id."""
    return {**batch, "batch": name or batch.get("file") or batch.get("batch_id")}


def approval_line(outcome: dict[str, Any]) -> str:
    """Who decided what, in one line: `rejected by bob: too risky`, `timed out: no answer...`."""
    by = f" by {outcome['approval_by']}" if outcome.get("approval_by") else ""
    why = f": {outcome['approval_reason']}" if outcome.get("approval_reason") else ""
    return f"{outcome['approval']}{by}{why}"


def batch_line(batch: dict[str, Any]) -> str:
    """One batch's drift in a sentence, which wraps where a wide table row would be cut."""
    def num(key: str) -> str:
        value = batch.get(key)
        return "n/a" if value is None else f"{value:.4f}"

    return (f"**batch `{_named(batch)['batch']}`**: {batch.get('rows')} rows, drift share "
            f"{num('drift_share')}, label drift {num('label_score')}, decay {num('decay')}")


def feature_rows(batches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per feature and batch, most drifted first: a table as narrow as the screen
    however many features drift (a list of names in one cell is cut off in the Prefect UI)."""
    rows = [{"feature": col, "batch": _named(b)["batch"], "score": score,
             "method": (b.get("feature_methods") or {}).get(col, ""),
             "drifted": "yes" if col in (b.get("drifted_features") or []) else "",
             "adversarial": "yes" if col in (b.get("adversarial_features") or []) else ""}
            for b in batches for col, score in (b.get("feature_scores") or {}).items()]
    return sorted(rows, key=lambda r: (r["drifted"] != "yes", str(r["batch"]), r["feature"]))


def _worst(shares: dict[str, float] | None) -> str:
    """`column share` of the worst column, for one cell."""
    if not shares:
        return ""
    col, value = max(shares.items(), key=lambda kv: kv[1] or 0)
    return f"{col} {value:.1%}" if value else "0"


def _spread(quantiles: dict[str, float] | None) -> str:
    """`p05 / p50 / p95` of a score distribution, for one cell."""
    q = quantiles or {}
    return " / ".join(f"{q[k]:.3f}" for k in ("p05", "p50", "p95") if k in q)


def link_lines(links: dict[str, str]) -> list[str]:
    """A UI link where a server gives one; else the local path, to copy into a shell."""
    return [f"- [{name}]({url})" if url.startswith("http") else f"- {name}: `{url}`"
            for name, url in links.items()]


def why_markdown(why: dict[str, Any]) -> str:
    """What the challenger does differently (tasks/gate/explain.py `Explanation.to_dict`): its
    few lines, then the few rows the two models disagree on most, and where all of them are."""
    rows = why.get("disagreements") or []
    table = markdown_table(rows, list(rows[0])) if rows else "no rows to compare\n"
    where = f"\nAll of them: `{why['path']}`\n" if why.get("path") else ""
    return "\n".join([*why.get("lines", []), "", table]) + where


def approval_markdown(model: str, version: int, verdict: str, gate_reason: str,
                      metrics: list[dict[str, Any]], drift: list[dict[str, Any]],
                      links: dict[str, str], why: dict[str, Any] | None = None) -> str:
    """What a person needs on one screen to approve or reject a challenger; `why`, what
    the challenger does differently, right under the metrics it explains."""
    lines = [f"## Promote **{model} v{version}** to `@champion`?", "",
             f"Gate ({verdict}): {gate_reason}", "",
             "### Champion vs challenger on the gate window",
             "", markdown_table(metrics, ["metric", "champion", "challenger"])]
    if why:
        lines += ["### Why: what the challenger does differently", "", why_markdown(why)]
    lines += ["### Drift in the batches that triggered retraining", ""]
    for batch in drift:  # a line per batch and a narrow table per feature: nothing is cut off
        lines += [batch_line(batch), ""]
        features = feature_rows([batch])
        lines += [markdown_table(features, ["feature", "score", "drifted"]) if features
                  else "no per-feature drift scores for this batch", ""]
    lines += ["### Links", ""]
    lines += link_lines(links)
    lines += ["", "Approve promotes blue-green (the current champion stays as `@previous`). "
              "Reject tags the version rejected; the champion does not move."]
    return "\n".join(lines)
