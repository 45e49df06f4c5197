"""Monitor one batch against the live champion: data, label and prediction drift, adversarial
validation, input and output metrics, and decay (once the batch's labels are there).

Drift is measured against the champion's own reference sample, so it always answers
"has the world moved away from what the live model knows?"
"""

from __future__ import annotations

import json
import logging
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.clean import finite_floats, finite_or_none
from tasks.data.spec import DatasetSpec
from tasks.monitoring.adversarial import domain_classifier
from tasks.monitoring.drift import (
    CLASSIFICATION_LABEL_THRESHOLD,
    CLASSIFICATION_PREDICTION_THRESHOLD,
    MAX_ROWS,
    DriftResult,
    StatTests,
    collector_paused,
    measure_drift,
    sample_rows,
    save_report,
)
from tasks.monitoring.quality import InputMetrics, Ranges, input_metrics, output_metrics
from tasks.monitoring.why import _safe as metric_safe
from tasks.monitoring.why import explained, why_metrics
from tasks.training.evaluate import evaluate, relative_gain
from tasks.training.model import GreenlightModel

log = logging.getLogger("greenlight.monitoring")
PREDICTION = "prediction"
PROBABILITY = "proba_"  # multiclass: the column of class c's probability is proba_<c>, as served


@dataclass
class MonitorResult:
    batch_id: str
    rows: int
    drift_share: float
    drifted_features: list[str]
    label_score: float | None  # None: the batch carries no labels (yet)
    label_drifted: bool
    prediction_score: float | None
    champion_metric: float | None  # None until the batch's labels land
    registered_metric: float
    decay: float | None
    reports: dict[str, str] = field(default_factory=dict)
    label_threshold: float | None = None
    prediction_drifted: bool = False
    prediction_threshold: float | None = None
    adversarial_auc: float = float("nan")
    adversarial_drifted: bool = False
    adversarial_threshold: float | None = None
    adversarial_features: list[str] = field(default_factory=list)
    adversarial_importance: dict[str, float] = field(default_factory=dict)
    feature_scores: dict[str, float | None] = field(default_factory=dict)
    feature_methods: dict[str, str] = field(default_factory=dict)
    missing_share: dict[str, float] = field(default_factory=dict)
    out_of_range_share: dict[str, float] = field(default_factory=dict)
    failed_predictions: float = 0.0
    score_mean: float | None = None
    score_quantiles: dict[str, float] = field(default_factory=dict)
    positive_share: float | None = None
    labelled_rows: int = 0
    # The champion's primary metric estimated without labels (CBPE/DLE), its band and its
    # decay against the estimator's reference; None without an estimator.
    estimated_metric: float | None = None
    estimated_low: float | None = None
    estimated_high: float | None = None
    estimated_decay: float | None = None
    # Why drift and decay were not judged (e.g. "not enough rows: 1 < 30"); "" when they were.
    not_judged: str = ""
    # Attribution drift: per feature, the change of the champion's mean |contribution| on the
    # batch against its reference, as a share of the reference's total (attribution.py).
    attribution_shift: dict[str, float] = field(default_factory=dict)
    # Per segment of `segment_feature` (segments.py), and the cycle line's words when one
    # segment alone crosses a decay threshold ("" otherwise).
    segment_feature: str | None = None
    segments: list[dict[str, Any]] = field(default_factory=list)
    segment_note: str = ""
    # Multiclass: each class's probability drift score (keyed by the class, as text), and
    # the class whose probability moved most; empty for binary and regression.
    probability_scores: dict[str, float | None] = field(default_factory=dict)
    probability_class: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe fields; the probability ones only when measured (multiclass), so a
        binary or regression monitor.json reads as it always did."""
        out = {k: finite_or_none(v) for k, v in asdict(self).items()}
        if not self.probability_scores:
            del out["probability_scores"], out["probability_class"]
        return out

    def run_metrics(self, metric: str) -> dict[str, float]:
        """The numbers a monitoring run logs, so MLflow can chart them over batches."""
        flat = {"drift_share": self.drift_share, "label_drift": self.label_score,
                f"champion_{metric}": self.champion_metric, "decay": self.decay,
                "rows": self.rows, "labelled_rows": self.labelled_rows,
                "prediction_drift": self.prediction_score,
                "adversarial_auc": self.adversarial_auc,
                "failed_predictions": self.failed_predictions, "score_mean": self.score_mean,
                "positive_share": self.positive_share,
                f"estimated_{metric}": self.estimated_metric,
                f"estimated_{metric}_low": self.estimated_low,
                f"estimated_{metric}_high": self.estimated_high,
                "estimated_decay": self.estimated_decay,
                **{f"score_{q}": v for q, v in self.score_quantiles.items()},
                # a class as MLflow takes it in a metric name (why.py's rule for segments)
                **{f"prediction_drift.{metric_safe(c)}": v
                   for c, v in self.probability_scores.items()},
                **why_metrics(self.attribution_shift, self.segments)}
        for prefix, values in (("drift", self.feature_scores), ("missing", self.missing_share),
                               ("out_of_range", self.out_of_range_share),
                               ("adversarial_importance", self.adversarial_importance)):
            flat.update({f"{prefix}.{c}": v for c, v in values.items()})
        return finite_floats(flat)

    def run_tags(self, champion_version: int) -> dict[str, str]:
        return {"greenlight.batch_id": self.batch_id,
                "greenlight.champion_version": str(champion_version),
                "greenlight.drifted_features": ",".join(self.drifted_features),
                "greenlight.adversarial_features": ",".join(self.adversarial_features)}


@dataclass(frozen=True)
class Limits:
    """The thresholds a verdict needs at monitoring time (the flow's Thresholds fill it)."""

    label_drift: float | None = None
    prediction_drift: float | None = None
    adversarial_auc: float = 0.65
    tests: StatTests = field(default_factory=StatTests)
    drift_share: float | None = None  # for the Evidently report's headline; None: Evidently's
    min_rows: int = 0  # below this many rows, drift and decay are "not enough rows"
    max_decay: float | None = None  # a segment alone past it is named (segments.py)
    max_estimated_decay: float | None = None


def estimated(champion: GreenlightModel, batch: pd.DataFrame, scores: np.ndarray,
              spec: DatasetSpec) -> dict[str, float | None]:
    """The champion's metric on `batch` estimated without its labels, as MonitorResult's
    `estimated_*` fields; empty when the champion has no estimator (older versions)."""
    from tasks.monitoring.estimation import estimate, estimated_decay, load_estimator

    found = load_estimator(champion.performance)
    if found is None or not len(batch):
        return {}
    guess = estimate(found, champion, batch, scores=scores)
    return {"estimated_metric": guess.value, "estimated_low": guess.low,
            "estimated_high": guess.high,
            "estimated_decay": finite_or_none(
                estimated_decay(found, guess, spec.higher_is_better))}


@dataclass(frozen=True)
class _Scored:
    """The champion's scores of rows it has already scored, in `evaluate`'s model shape, so
    decay does not score the batch twice (200 trees over 3000 rows cost ~40 ms of CPU)."""

    scores: np.ndarray

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        return self.scores


# champion -> (its reference's content hash, its scores of that reference): see reference_scores
_REFERENCE_SCORES: weakref.WeakKeyDictionary[GreenlightModel, tuple[np.ndarray, np.ndarray]] = (
    weakref.WeakKeyDictionary())


def predicted_values(champion: GreenlightModel, scores: np.ndarray) -> np.ndarray:
    """What prediction drift compares: the scores, or (multiclass) the predicted class."""
    return champion.label(scores) if np.ndim(scores) == 2 else scores


def probability_columns(champion: GreenlightModel, scores: np.ndarray, spec: DatasetSpec
                        ) -> dict[str, np.ndarray]:
    """Multiclass: each class's probability as its own column (`proba_<class>`), which
    prediction drift judges beside the predicted class: a class whose probability rises
    without yet winning rows moves only here. Empty otherwise. A name the dataset already
    uses (a feature called `proba_x`) is left out rather than written over."""
    if np.ndim(scores) != 2:
        return {}
    taken = {*spec.columns, PREDICTION}
    return {name: scores[:, i] for i, c in enumerate(champion.labels)
            if (name := f"{PROBABILITY}{c}") not in taken}


def _prediction_verdict(drift: DriftResult) -> dict[str, Any]:
    """MonitorResult's prediction fields. Multiclass: the figure is the largest of the
    predicted class's score and every class probability's (one method and cut for all,
    so the largest decides), drifted when any is past the cut, and the class whose
    probability moved most is named. Binary and regression: the prediction column's."""
    score = None if drift.prediction_score is None else float(drift.prediction_score)
    out = {"prediction_score": score, "prediction_drifted": bool(drift.prediction_drifted)}
    probs = {c[len(PROBABILITY):]: v for c, v in drift.probability_scores.items()}
    finite = {c: v for c, v in probs.items() if np.isfinite(v)}
    if not probs:
        return out
    top = max(finite, key=lambda c: finite[c], default=None)
    judged = [v for v in (score, *finite.values()) if v is not None and np.isfinite(v)]
    return {"prediction_score": max(judged, default=score),
            "prediction_drifted": out["prediction_drifted"] or bool(drift.probability_drifted),
            "probability_scores": {c: finite_or_none(v) for c, v in probs.items()},
            "probability_class": top}


def quality(champion: GreenlightModel, batch: pd.DataFrame, scores: np.ndarray,
            spec: DatasetSpec, title: str | None) -> Any:
    """Multiclass, once some labels exist: Evidently's classification quality of the
    batch's labelled rows (tasks/monitoring/evidently_metrics.py); None otherwise (binary
    and regression keep greenlight's metric alone, as before). A view of numbers the
    champion metric already gives: if Evidently fails on it, one logged line, no report,
    and monitoring goes on."""
    if np.ndim(scores) != 2 or spec.target not in batch or not batch[spec.target].notna().any():
        return None
    from tasks.monitoring.evidently_metrics import quality_frame, quality_report

    classes = list(champion.labels)
    try:
        return quality_report(quality_frame(batch, scores, classes, spec), classes, title)
    except Exception as exc:  # noqa: BLE001 - a view must never stop monitoring
        log.warning("no classification quality report: %s: %s", type(exc).__name__,
                    str(exc).splitlines()[0] if str(exc) else "")
        return None


def reference_scores(champion: GreenlightModel, reference: pd.DataFrame) -> np.ndarray:
    """The champion's scores of its own reference, computed once per champion and reference.

    A cycle monitors each pending batch against the same champion and reference, and
    scoring the reference again for every batch cost as much as scoring the batch. The
    cache is keyed by the model object (dropped with it) and checked against a hash of the
    reference's feature values, so a different or edited reference is scored afresh."""
    key = pd.util.hash_pandas_object(reference[champion.features], index=False).to_numpy()
    cached = _REFERENCE_SCORES.get(champion)
    if cached is not None and np.array_equal(cached[0], key):
        return cached[1]
    scores = np.asarray(champion.score(reference))
    scores.setflags(write=False)  # shared between batches: nobody may edit it in place
    _REFERENCE_SCORES[champion] = (key, scores)
    return scores


def score_decay(champion: GreenlightModel, batch: pd.DataFrame, spec: DatasetSpec,
                registered_metric: float, scores: np.ndarray | None = None
                ) -> tuple[float | None, float | None, int]:
    """The champion's primary metric on the batch's labelled rows, and its relative decay
    against the registered metric; (None, None, 0) while no labels have landed. `scores`,
    when given, are the champion's scores of every row of `batch`, in order."""
    mask = (batch[spec.target].notna() if spec.target in batch
            else pd.Series(False, index=batch.index)).to_numpy()
    labelled = batch[mask]
    if labelled.empty:
        return None, None, 0
    model = champion if scores is None else _Scored(np.asarray(scores)[mask])
    metric = evaluate(model, labelled, spec)[spec.primary_metric]  # type: ignore[arg-type]
    return metric, -relative_gain(metric, registered_metric, spec.higher_is_better), len(labelled)


def monitor_batch(batch_id: str, batch: pd.DataFrame, reference: pd.DataFrame,
                  champion: GreenlightModel, registered_metric: float, spec: DatasetSpec,
                  out_dir: Path, label_threshold: float | None = None,
                  limits: Limits | None = None, ranges: Ranges | None = None,
                  max_rows: int = MAX_ROWS, inputs: InputMetrics | None = None,
                  source: str | None = None) -> MonitorResult:
    """Drift, adversarial validation, input/output metrics and decay for one batch, with the
    Evidently report and a JSON of everything written to `out_dir`.

    A batch (or reference) above `max_rows` rows is scored and measured on a seeded sample
    of that many rows (`sample_rows`): the verdicts agree with every row's (see
    benchmarks/monitoring_speed.py) at a fifth of the time. `rows` still counts the whole
    batch, and the input metrics (missing, out of range) read every row: they are cheap.
    On Dask, `batch` is the sample drawn from every partition and `inputs` the partitions'
    combined input metrics (tasks/scale/distributed.py); `rows` is then `inputs.rows`.

    Below `limits.min_rows` rows nothing is judged (`too_few_rows`): one row's "drift
    share" is 0 or 1 and its accuracy 0 or 1, which is noise, not evidence. `source` (the
    landed file) goes into the report's title with the batch id."""
    limits = limits or Limits(label_drift=label_threshold)
    rows = inputs.rows if inputs is not None else len(batch)
    if rows < limits.min_rows:
        return too_few_rows(batch_id, batch, champion, registered_metric, spec, out_dir,
                            limits, ranges, inputs)
    title = f"greenlight drift: batch {batch_id}" + (f" ({source})" if source else "")
    with collector_paused():
        return _monitor(batch_id, batch, reference, champion, registered_metric, spec, out_dir,
                        limits, ranges, max_rows, inputs, title)


def too_few_rows(batch_id: str, batch: pd.DataFrame, champion: GreenlightModel,
                 registered_metric: float, spec: DatasetSpec, out_dir: Path, limits: Limits,
                 ranges: Ranges | None, inputs: InputMetrics | None) -> MonitorResult:
    """A batch too small to judge: input and output metrics only; drift share and decay
    unknown (null), no drift verdict, and `not_judged` says why, so the cycle's reasons
    say "not enough rows" rather than "drift share 1.00"."""
    inputs = inputs or input_metrics(batch, spec, ranges or Ranges())
    scores = champion.score(batch) if len(batch) else np.array([])
    outputs = output_metrics(scores, spec)
    mask = (batch[spec.target].notna() if spec.target in batch
            else pd.Series(False, index=batch.index))
    result = MonitorResult(
        batch_id=batch_id, rows=inputs.rows, drift_share=float("nan"), drifted_features=[],
        label_score=None, label_drifted=False, prediction_score=None, champion_metric=None,
        registered_metric=registered_metric, decay=None,
        adversarial_threshold=limits.adversarial_auc,
        missing_share=inputs.missing_share, out_of_range_share=inputs.out_of_range_share,
        failed_predictions=outputs.failed_share, score_mean=finite_or_none(outputs.score_mean),
        score_quantiles=outputs.score_quantiles, positive_share=outputs.positive_share,
        labelled_rows=int(mask.sum()),
        not_judged=f"not enough rows to judge drift or decay: {inputs.rows} < "
                   f"{limits.min_rows} (Thresholds.min_rows)")
    path = Path(out_dir) / "monitor.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_dict(), indent=2, default=str))
    result.reports = {"monitor": str(path)}
    return result


def _monitor(batch_id: str, batch: pd.DataFrame, reference: pd.DataFrame,
             champion: GreenlightModel, registered_metric: float, spec: DatasetSpec,
             out_dir: Path, limits: Limits, ranges: Ranges | None, max_rows: int,
             inputs: InputMetrics | None, title: str | None = None) -> MonitorResult:
    """`monitor_batch`'s work, with its arguments resolved."""
    scored, reference = sample_rows(batch, max_rows), sample_rows(reference, max_rows)
    scores = champion.score(scored)
    ref_scores = reference_scores(champion, reference)
    probabilities = probability_columns(champion, scores, spec)
    current = scored[spec.columns].assign(**{PREDICTION: predicted_values(champion, scores)},
                                          **probabilities)
    ref = reference[spec.columns].assign(**{PREDICTION: predicted_values(champion, ref_scores)},
                                         **probability_columns(champion, ref_scores, spec))
    drift = measure_drift(ref, current, spec, label_threshold=limits.label_drift,
                          prediction_column=PREDICTION,
                          prediction_threshold=limits.prediction_drift,
                          probability_columns=list(probabilities), tests=limits.tests,
                          max_rows=max_rows, drift_share=limits.drift_share, title=title)
    named = title and title.replace("greenlight drift", "greenlight quality", 1)
    paths = save_report(drift, out_dir, quality(champion, scored, scores, spec, named), named)
    adv = domain_classifier(reference, scored, spec)
    inputs = inputs or input_metrics(batch, spec, ranges or Ranges())
    outputs = output_metrics(scores, spec)
    metric, decay, labelled = score_decay(champion, scored, spec, registered_metric, scores)
    classify = spec.task in ("classification", "multiclass")
    default_cut = CLASSIFICATION_LABEL_THRESHOLD if classify else None
    adv_drifted = bool(adv.auc >= limits.adversarial_auc)
    result = MonitorResult(
        batch_id=batch_id, rows=inputs.rows, drift_share=float(drift.drift_share),
        drifted_features=list(drift.drifted_features), label_score=drift.label_score,
        label_drifted=bool(drift.label_drifted),
        champion_metric=metric, registered_metric=registered_metric, decay=decay,
        label_threshold=limits.label_drift or default_cut, **_prediction_verdict(drift),
        prediction_threshold=limits.prediction_drift or (
            CLASSIFICATION_PREDICTION_THRESHOLD if classify else limits.label_drift),
        adversarial_auc=adv.auc, adversarial_drifted=adv_drifted,
        adversarial_threshold=limits.adversarial_auc,
        # the drivers are named only when there is a shift to drive: at AUC ~0.5 they are noise
        adversarial_features=adv.top_features if adv_drifted else [],
        adversarial_importance=adv.importance,
        feature_scores=drift.to_dict()["feature_scores"], feature_methods=drift.feature_methods,
        missing_share=inputs.missing_share, out_of_range_share=inputs.out_of_range_share,
        failed_predictions=outputs.failed_share, score_mean=finite_or_none(outputs.score_mean),
        score_quantiles=outputs.score_quantiles, positive_share=outputs.positive_share,
        labelled_rows=labelled, **estimated(champion, scored, scores, spec),
        **explained(champion, scored, scores, reference, spec, registered_metric, limits))
    paths["monitor"] = Path(out_dir) / "monitor.json"
    paths["monitor"].write_text(json.dumps(result.to_dict(), indent=2, default=str))
    result.reports = {k: str(v) for k, v in paths.items()}
    return result
