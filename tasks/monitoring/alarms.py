"""Alarms: which thresholds a monitored batch crossed, and the Prefect events they raise.

One function turns a batch's numbers into alarms, so the retraining decision and the
events agree by construction. Each alarm kind maps to an event name; an automation or a
deployment trigger on that name acts on it with no glue code (deployments/prefect.yaml
retrains on `greenlight.drift.detected` and `greenlight.model.decayed`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from core.clean import json_safe
from core.events import (  # the names live in core, once
    DECAY_EVENT,
    DRIFT_EVENT,
    FAILED_EVENT,
    QUALITY_EVENT,
    dataset_resource,
    run_link,
)

if TYPE_CHECKING:
    from tasks.data.predictions import ServedStats
    from tasks.monitoring.monitor import MonitorResult

EVENTS = {"data": DRIFT_EVENT, "label": DRIFT_EVENT, "prediction": DRIFT_EVENT,
          "adversarial": DRIFT_EVENT, "decay": DECAY_EVENT, "estimated_decay": DECAY_EVENT,
          "missing": QUALITY_EVENT,
          "out_of_range": QUALITY_EVENT, "failed_predictions": FAILED_EVENT,
          "attribution": DRIFT_EVENT}
# Kinds that mean "the live model may be wrong now": they retrain. Quality alarms say the
# data is broken, which a new model would learn from, so they alert and do not retrain.
# Attribution drift is a hint of concept drift to check (adversarial validation, decay once
# the labels land), not evidence: it alerts and does not retrain either.
RETRAIN_KINDS = frozenset({"data", "label", "prediction", "adversarial", "decay",
                           "estimated_decay"})


@dataclass(frozen=True)
class Alarm:
    kind: str
    batch_id: str
    value: float
    threshold: float | None
    reason: str
    features: tuple[str, ...] = ()
    name: str = ""  # the batch as a person knows it: its file name or SQL slice (`named`)

    @property
    def event(self) -> str:
        return EVENTS[self.kind]

    @property
    def label(self) -> str:
        """What to show a person: the file name, else the batch id."""
        return self.name or self.batch_id

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "features": list(self.features), "event": self.event}


def _over(value: float | None, limit: float | None) -> bool:
    return value is not None and limit is not None and math.isfinite(value) and value >= limit


def check(r: MonitorResult, *, drift_share: float, max_decay: float,
          max_missing_share: float | None = None, max_out_of_range: float | None = None,
          max_failed_predictions: float | None = None,
          max_estimated_decay: float | None = None,
          max_attribution_shift: float | None = None) -> list[Alarm]:
    """Every threshold `r` crosses. Label, prediction and adversarial verdicts were made at
    monitoring time with their own thresholds (they need the test's method); the rest here."""
    b, out = r.batch_id, []
    if _over(r.drift_share, drift_share):
        out.append(Alarm("data", b, r.drift_share, drift_share,
                         f"{b}: data drift share {r.drift_share:.2f} >= {drift_share} "
                         f"({', '.join(r.drifted_features)})", tuple(r.drifted_features)))
    if r.label_drifted:
        out.append(Alarm("label", b, r.label_score, r.label_threshold,
                         f"{b}: label drift (score {r.label_score:.3f})"))
    if r.prediction_drifted:
        top = r.probability_class  # multiclass: the class whose probability moved most
        out.append(Alarm("prediction", b, r.prediction_score, r.prediction_threshold,
                         f"{b}: prediction drift (score {r.prediction_score:.3f})" + (
                             f", most in the probability of class {top} "
                             f"({r.probability_scores[top]:.3f})" if top else "")))
    if r.adversarial_drifted:
        out.append(Alarm("adversarial", b, r.adversarial_auc, r.adversarial_threshold,
                         f"{b}: a domain classifier tells it from the reference (AUC "
                         f"{r.adversarial_auc:.2f}; driven by {', '.join(r.adversarial_features)})",
                         tuple(r.adversarial_features)))
    if _over(r.decay, max_decay):
        out.append(Alarm("decay", b, r.decay, max_decay,
                         f"{b}: champion decayed {r.decay:.1%} >= {max_decay:.0%} "
                         f"({r.champion_metric:.4f} vs registered {r.registered_metric:.4f})"))
    if r.decay is None and _over(r.estimated_decay, max_estimated_decay):
        out.append(Alarm("estimated_decay", b, r.estimated_decay, max_estimated_decay,
                         f"{b}: champion estimated to decay {r.estimated_decay:.1%} >= "
                         f"{max_estimated_decay:.0%} before its labels land (estimated "
                         f"{r.estimated_metric:.4f}, band {r.estimated_low:.4f}.."
                         f"{r.estimated_high:.4f})"))
    for kind, shares, limit in (("missing", r.missing_share, max_missing_share),
                                ("out_of_range", r.out_of_range_share, max_out_of_range)):
        bad = {c: v for c, v in shares.items() if _over(v, limit)}
        if bad:
            worst = max(bad.values())
            out.append(Alarm(kind, b, worst, limit, f"{b}: {kind.replace('_', ' ')} share "
                             f"{worst:.1%} >= {limit:.1%} in {', '.join(bad)}", tuple(bad)))
    moved = {c: v for c, v in r.attribution_shift.items()
             if _over(abs(v), max_attribution_shift)}
    if moved:
        ranked = sorted(moved.items(), key=lambda kv: -abs(kv[1]))
        words = ", ".join(f"{c} {v:+.2f}" for c, v in ranked)
        out.append(Alarm("attribution", b, max(abs(v) for v in moved.values()),
                         max_attribution_shift, f"{b}: the champion relies differently on "
                         f"{words} (change of mean |contribution|, share of its reference's "
                         f"total) >= {max_attribution_shift}", tuple(moved)))
    if _over(r.failed_predictions, max_failed_predictions) and r.failed_predictions > 0:
        out.append(Alarm("failed_predictions", b, r.failed_predictions, max_failed_predictions,
                         f"{b}: {r.failed_predictions:.1%} of predictions failed"))
    return out


def check_served(stats: list[ServedStats], *, max_failed_predictions: float | None
                 ) -> list[Alarm]:
    """Failed served predictions, per version and variant (a failing canary or shadow is
    named as such); the same threshold and event as a batch's failed predictions."""
    return [Alarm("failed_predictions", f"served {s.name}", s.failed_share,
                  max_failed_predictions, f"served {s.name}: {s.failed_share:.1%} of "
                  f"{s.count} predictions failed")
            for s in stats if _over(s.failed_share, max_failed_predictions)
            and s.failed_share > 0]


def named(raised: list[Alarm], names: Mapping[str, str | None]) -> list[Alarm]:
    """The alarms as a person reads them: each batch by its file name (or SQL slice) from
    the manifest, in `name` and at the head of its reason, where the id was. The id stays in
    `batch_id`, for paths and the records that join on it."""
    out = []
    for a in raised:
        name = names.get(a.batch_id)
        if not name or name == a.batch_id:
            out.append(a)
            continue
        reason = (name + a.reason[len(a.batch_id):] if a.reason.startswith(a.batch_id)
                  else a.reason)
        out.append(replace(a, name=name, reason=reason))
    return out


def emit(alarms: list[Alarm], *, dataset: str, policy: str, model: str,
         champion_version: int | None, retraining: bool) -> list[str]:
    """One Prefect event per event name, its payload carrying every alarm's numbers.

    `retraining` says whether this run retrains by itself, so listeners can tell an alarm
    already being answered from one that needs them. `files` are the batches as a person
    knows them (file names, in the order of `batch_ids`). The cycle emits them as soon as
    monitoring has decided, before any retraining or approval, so a pause for a person never
    holds them back, and `champion_version` is the champion the batches were judged
    against. Returns the event names emitted."""
    from prefect.events import emit_event

    grouped: dict[str, list[Alarm]] = defaultdict(list)
    for a in alarms:
        grouped[a.event].append(a)
    related = ([{"prefect.resource.id": f"mlflow.model.{model}.v{champion_version}",
                 "prefect.resource.role": "champion", "prefect.resource.name":
                 f"{model} v{champion_version}"}] if champion_version is not None else [])
    for name, group in grouped.items():
        payload = {"dataset": dataset, "model": model, "champion_version": champion_version,
                   "version": champion_version, "link": run_link(), "policy": policy,
                   "retraining": retraining,
                   "batch_ids": sorted({a.batch_id for a in group}),
                   "files": [label for _, label in sorted({(a.batch_id, a.label)
                                                           for a in group})],
                   "kinds": sorted({a.kind for a in group}),
                   "alarms": [json_safe(a.to_dict()) for a in group]}
        emit_event(event=name, resource=dataset_resource(dataset, policy), related=related,
                   payload=payload)
    return list(grouped)

