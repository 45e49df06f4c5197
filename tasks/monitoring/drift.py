"""Drift: how far a batch has moved from the champion's training reference (Evidently 0.7).

Evidently picks the stat test per column (KS/chi²/z under 1000 reference rows, normed
Wasserstein/Jensen–Shannon above). We declare column types from the spec rather than let it
guess, and handle the cases it raises on (an all-missing column) ourselves, so a drift check
never crashes a run. Evidently is imported lazily: its import costs seconds. Above
WIDE_FEATURES features, the per-feature tests run vectorised in `wide.py` (same tests, same
verdicts) and Evidently only draws the report (see `measure_drift`).
"""

from __future__ import annotations

import gc
import html
import json
import logging
import math
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.clean import finite_or_none
from tasks.data.spec import DatasetSpec
from tasks.monitoring import wide

# Label drift default for classification. PSI is the usual label-prior measure, but on a
# binary label a 0.35 -> 0.20 prior shift gives PSI ~0.115, so the textbook 0.1 cut catches
# it only ~80% of the time on 3000-row batches. 0.05 (~10 points off a 0.35 prior) flags it
# reliably and is still ~10x the no-drift noise at 3000 rows. Regression keeps Evidently's
# default (normed Wasserstein >= 0.1, or KS p < 0.05 under 1000 reference rows).
CLASSIFICATION_LABEL_METHOD = "psi"
CLASSIFICATION_LABEL_THRESHOLD = 0.05
# Prediction drift compares the champion's scores on the batch with its scores on its own
# reference, which it trained on: in-sample scores are more confident, so unchanged data
# already shows PSI ~0.02-0.06 (synthetic stream). 0.1 stays clear of that; a real shift in
# what the model says (a prior shift: ~0.37) is far above it.
CLASSIFICATION_PREDICTION_THRESHOLD = 0.1
MAX_ROWS = 100_000
# Above this many features, `measure_drift` judges them with `wide.py` instead of Evidently.
# Evidently costs ~0.27 s a column at 10,000 rows here (10k x 200 columns: 54 s), nearly all
# of it plots, and its page grows by each column's plots; a 200-column report is already
# more than anyone reads. Up to 200 columns nothing changes: Evidently judges every feature.
WIDE_FEATURES = 200
# A wide batch's Evidently report shows this many features, the furthest past their cut
# first (with label and prediction drift); every feature's verdict is in the summary.
REPORT_COLUMNS = 20


@dataclass
class DriftResult:
    drift_share: float
    drifted_features: list[str]
    feature_scores: dict[str, float]
    feature_methods: dict[str, str]
    label_score: float | None  # None when the current batch carries no labels
    label_method: str
    label_drifted: bool
    prediction_score: float | None = None
    prediction_method: str | None = None
    prediction_drifted: bool | None = None
    sampled: bool = False
    reference_rows: int = 0
    current_rows: int = 0
    title: str | None = None
    snapshot: Any = field(default=None, repr=False, compare=False)
    # Multiclass: each class probability column's drift score, and those past the cut
    # (judged as the prediction is); empty for binary and regression.
    probability_scores: dict[str, float] = field(default_factory=dict)
    probability_drifted: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe summary: non-finite scores (a constant reference column) become null.
        The probability keys appear only when probabilities were measured (multiclass), so
        a binary or regression summary reads as it always did."""
        probabilities = {"probability_scores": {k: finite_or_none(v) for k, v in
                                                self.probability_scores.items()},
                         "probability_drifted": list(self.probability_drifted)}
        return {**self._base_dict(), **(probabilities if self.probability_scores else {})}

    def _base_dict(self) -> dict[str, Any]:
        return {
            "drift_share": self.drift_share,
            "drifted_features": list(self.drifted_features),
            "feature_scores": {k: finite_or_none(v) for k, v in self.feature_scores.items()},
            "feature_methods": dict(self.feature_methods),
            "label_score": finite_or_none(self.label_score),
            "label_method": self.label_method,
            "label_drifted": self.label_drifted,
            "prediction_score": finite_or_none(self.prediction_score),
            "prediction_method": self.prediction_method,
            "prediction_drifted": self.prediction_drifted,
            "sampled": self.sampled,
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "title": self.title,
        }


@dataclass(frozen=True)
class _Verdict:
    score: float
    method: str
    drifted: bool


@contextmanager
def _quiet() -> Iterator[None]:
    """Evidently and numpy warn on every constant column; the verdict already says it."""
    logger = logging.getLogger("evidently")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block; one young-generation pass at its end.

    A monitor step builds ~80k objects (Evidently's widgets, plotly and matplotlib figures)
    and ~73k of them end as cyclic garbage. With the collector on, the ones alive across its
    passes get promoted, and every ~4 batches that triggers a full collection over the
    whole process heap (700k objects once the stack is imported: 0.4-1.2 s each). Paused,
    each object is looked at once, in the one pass that frees the garbage, here rather than
    wherever the next allocation happens to be. Nested or already paused: left as it is."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect(0)


def _as_numeric(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s, errors="coerce").astype(float)


_as_category = wide.as_category  # one definition: wide.py counts categories the same way


def _sample(frame: pd.DataFrame, max_rows: int, seed: int) -> tuple[pd.DataFrame, bool]:
    if len(frame) <= max_rows:
        return frame, False
    return frame.sample(n=max_rows, random_state=seed), True


def sample_rows(frame: pd.DataFrame, max_rows: int = MAX_ROWS, seed: int = 0) -> pd.DataFrame:
    """A seeded random sample of `max_rows` rows of a bigger frame; smaller ones unchanged.

    Monitoring a 1M-row batch in full costs ~24 s in Evidently plus ~16 s to score it with
    the champion. The distances (normed Wasserstein, Jensen-Shannon) and the champion's
    metric move by a few thousandths at 100k rows, far inside the thresholds, so a big
    batch is scored and measured on this sample. `benchmarks/monitoring_speed.py` measures
    the time and how often the verdicts agree with the exhaustive computation."""
    return _sample(frame, max_rows, seed)[0]


def _present(column: pd.Series) -> int:
    """Values Evidently can test: not missing and, for numbers, finite (it drops ±inf too,
    so a column of nothing but ±inf is as empty to it as one of nothing but NaN)."""
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return int(np.isfinite(column.to_numpy(dtype="float64", na_value=np.nan)).sum())
    return int(column.notna().sum())


def _missing_verdict(ref: pd.Series, cur: pd.Series) -> _Verdict | None:
    """Evidently raises on an all-missing column; values appearing or vanishing is drift."""
    verdict = wide.missing_verdict(_present(ref), _present(cur))
    return None if verdict is None else _Verdict(verdict.score, verdict.method, verdict.drifted)


def _label_params(spec: DatasetSpec, method: str | None,
                  threshold: float | None) -> tuple[str | None, float | None]:
    if spec.task in ("classification", "multiclass") and method is None:
        return CLASSIFICATION_LABEL_METHOD, (
            CLASSIFICATION_LABEL_THRESHOLD if threshold is None else threshold
        )
    return method, threshold


def _verdicts(snapshot: Any) -> dict[str, _Verdict]:
    """Per-column verdicts live only in the tests section, keyed by the metric's id."""
    data = snapshot.dict()
    status = {t["metric_config"]["metric_id"]: t["status"] for t in data.get("tests", [])}
    out: dict[str, _Verdict] = {}
    for metric in data["metrics"]:
        config = metric["config"]
        if not config["type"].endswith(":ValueDrift"):
            continue
        verdict = getattr(status.get(metric["id"]), "value", status.get(metric["id"]))
        score = float("nan") if metric["value"] is None else float(metric["value"])
        out[config["column"]] = _Verdict(score, str(config.get("method")), verdict == "FAIL")
    return out


@dataclass(frozen=True)
class StatTests:
    """Which stat test Evidently runs per column, and its cut; None keeps Evidently's choice.

    Methods are Evidently's names (ks, chisquare, wasserstein, jensenshannon, psi, kl_div,
    z, anderson, ...). `per_column` overrides the type's method for the named columns."""

    num_method: str | None = None
    cat_method: str | None = None
    per_column: dict[str, str] = field(default_factory=dict)
    threshold: float | None = None

    def method_for(self, column: str, categorical: bool) -> str | None:
        """The method named for a column (the column's own, else its type's), as Evidently
        resolves it; None: Evidently's choice."""
        return self.per_column.get(column) or (self.cat_method if categorical
                                               else self.num_method)

    def preset_kwargs(self, features: list[str]) -> dict[str, Any]:
        per_column = {c: m for c, m in self.per_column.items() if c in features}
        return {k: v for k, v in {"num_method": self.num_method, "cat_method": self.cat_method,
                                  "per_column_method": per_column or None,
                                  "threshold": self.threshold}.items() if v is not None}


def _run_report(ref: pd.DataFrame, cur: pd.DataFrame, numerical: list[str],
                categorical: list[str], features: list[str], extra: list[Any],
                tests: StatTests | None = None, drift_share: float | None = None,
                title: str | None = None) -> Any:
    """The Evidently report. `drift_share` is greenlight's retrain threshold, so the
    report's "Dataset Drift is (NOT) detected" headline says what greenlight decided
    (Evidently's own default is 0.5); `title` names the snapshot (batch and file)."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    kwargs = (tests or StatTests()).preset_kwargs(features)
    if drift_share is not None:
        kwargs["drift_share"] = drift_share
    metrics = ([DataDriftPreset(columns=features, **kwargs)] if features else []) + extra
    if not metrics:
        return None
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    return Report(metrics, include_tests=True).run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
        name=title,
    )


def _column_types(spec: DatasetSpec, cur: pd.DataFrame, prediction: str | None,
                  probabilities: list[str]) -> tuple[list[str], list[str]]:
    """Numerical and categorical columns; a classification label is always categorical,
    a class probability always numerical."""
    numerical, categorical = list(spec.numerical_features), [
        c for c in spec.features if c in spec.categorical_features]
    classes = spec.task in ("classification", "multiclass")
    (categorical if classes else numerical).append(spec.target)
    if prediction:  # multiclass: the predicted class (tasks/monitoring/monitor.py)
        is_label = classes and not pd.api.types.is_float_dtype(
            cur[prediction])
        (categorical if is_label else numerical).append(prediction)
    return numerical + probabilities, categorical


def _wide_verdicts(ref: pd.DataFrame, cur: pd.DataFrame, spec: DatasetSpec,
                   numerical: list[str], categorical: list[str],
                   tests: StatTests) -> dict[str, wide.ColumnDrift]:
    """The features' verdicts from `wide.py`, as Evidently would give them on these rows;
    a feature whose named method `wide.py` lacks is absent (Evidently judges it)."""
    features = set(spec.features)
    num = [c for c in numerical if c in features]
    cat = [c for c in categorical if c in features]
    methods = {c: tests.method_for(c, c in cat) for c in spec.features}
    with _quiet():
        return wide.column_drift(ref, cur, num, cat, methods=methods, threshold=tests.threshold)


def _shown(judged: dict[str, wide.ColumnDrift], features: list[str]) -> list[str]:
    """The features a wide batch's report shows: the REPORT_COLUMNS furthest past their cut,
    then any that only Evidently can judge. A column missing on a side has nothing to draw
    (Evidently raises on it); its verdict is in the summary."""
    drawable = [c for c in judged if not math.isnan(judged[c].threshold)]
    ranked = sorted(drawable, key=lambda c: judged[c].severity, reverse=True)
    return ranked[:REPORT_COLUMNS] + [c for c in features if c not in judged]


def measure_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    spec: DatasetSpec,
    *,
    label_method: str | None = None,
    label_threshold: float | None = None,
    prediction_column: str | None = None,
    prediction_threshold: float | None = None,
    probability_columns: list[str] | None = None,
    tests: StatTests | None = None,
    max_rows: int = MAX_ROWS,
    seed: int = 0,
    drift_share: float | None = None,
    title: str | None = None,
) -> DriftResult:
    """Feature, label and (optional) prediction drift of `current` against `reference`.

    The prediction column uses the label's method with `prediction_threshold` (default
    CLASSIFICATION_PREDICTION_THRESHOLD, or the label's for regression); `tests` picks the
    feature stat tests. A missing or unlabelled target gives `label_score=None` rather than
    an error, since labels often arrive late. `probability_columns` (multiclass: one column
    per class probability) are judged as the prediction is, each its own ValueDrift.
    `drift_share` (the flow's retrain threshold)
    and `title` go to the Evidently report, so its headline agrees with the decision.

    A wide batch (more than WIDE_FEATURES features) has its features judged by `wide.py`:
    Evidently's own tests and cuts, vectorised, so 1,000 columns take seconds instead of
    minutes (`benchmarks/wide_drift.py`). Evidently still measures label and prediction
    drift, and draws the report for the REPORT_COLUMNS features furthest past their cut,
    each as its own ValueDrift; their verdicts in the result are Evidently's, so the page and
    the summary agree. The report has no DataDriftPreset: its headline and drifted-columns
    count would be those of the few columns shown, not greenlight's share over all of them
    (the contradiction of issue 16.6); the share and every feature's verdict are in
    `summary.json`. Drawing all 1,000 would cost Evidently minutes and a page nobody reads.
    """
    from evidently.metrics import ValueDrift

    absent = [c for c in spec.features if c not in reference or c not in current]
    if absent:
        raise ValueError(f"drift: feature columns missing from a frame: {', '.join(absent)}")
    ref, ref_sampled = _sample(reference, max_rows, seed)
    cur, cur_sampled = _sample(current, max_rows, seed)
    if prediction_column not in ref or prediction_column not in cur:
        prediction_column = None
    probabilities = [c for c in probability_columns or [] if c in ref and c in cur]
    numerical, categorical = _column_types(spec, cur, prediction_column, probabilities)
    judged: dict[str, wide.ColumnDrift] = {}
    if len(spec.features) > WIDE_FEATURES:
        judged = _wide_verdicts(ref, cur, spec, numerical, categorical, tests or StatTests())
        shown = _shown(judged, spec.features)
        keep = {*shown, spec.target, prediction_column, *probabilities}
        numerical = [c for c in numerical if c in keep]
        categorical = [c for c in categorical if c in keep]
    prep = {c: _as_category if c in categorical else _as_numeric
            for c in numerical + categorical if c in ref and c in cur}
    ref = pd.DataFrame({c: fn(ref[c]) for c, fn in prep.items()})
    cur = pd.DataFrame({c: fn(cur[c]) for c, fn in prep.items()})

    fixed = {c: v for c in prep if (v := _missing_verdict(ref[c], cur[c])) is not None}
    live = [c for c in prep if c not in fixed]
    method, threshold = _label_params(spec, label_method, label_threshold)
    if prediction_threshold is None and spec.task in ("classification", "multiclass"):
        prediction_threshold = CLASSIFICATION_PREDICTION_THRESHOLD
    cuts = {spec.target: threshold, prediction_column: prediction_threshold or threshold,
            **{c: prediction_threshold or threshold for c in probabilities}}
    outputs = [c for c in (spec.target, prediction_column, *probabilities) if c in live]
    reported = [c for c in spec.features if c in live]
    extra = [ValueDrift(column=c, method=method, threshold=cuts[c]) for c in outputs]
    if judged:  # a wide batch: the shown features as ValueDrift metrics, no preset
        t = tests or StatTests()
        extra = [ValueDrift(column=c, method=t.method_for(c, c in categorical),
                            threshold=t.threshold) for c in shown if c in live] + extra
        reported = []
    with _quiet():
        snapshot = _run_report(
            ref, cur, [c for c in numerical if c in live], [c for c in categorical if c in live],
            reported, extra, tests, drift_share, title,
        )
        verdicts = {**{c: _Verdict(v.score, v.method, v.drifted) for c, v in judged.items()},
                    **(_verdicts(snapshot) if snapshot is not None else {}), **fixed}

    features = {c: verdicts[c] for c in spec.features}
    drifted = [c for c, v in features.items() if v.drifted]
    label = verdicts.get(spec.target) if spec.target in live else None
    pred = verdicts.get(prediction_column) if prediction_column else None
    return DriftResult(
        drift_share=len(drifted) / len(features) if features else 0.0,
        drifted_features=drifted,
        feature_scores={c: v.score for c, v in features.items()},
        feature_methods={c: v.method for c, v in features.items()},
        label_score=None if label is None else label.score,
        label_method="not measured: no labels" if label is None else label.method,
        label_drifted=bool(label and label.drifted),
        prediction_score=None if pred is None else pred.score,
        prediction_method=None if pred is None else pred.method,
        prediction_drifted=None if pred is None else pred.drifted,
        sampled=ref_sampled or cur_sampled,
        reference_rows=len(ref),
        current_rows=len(cur),
        title=title,
        snapshot=snapshot,
        probability_scores={c: verdicts[c].score for c in probabilities if c in verdicts},
        probability_drifted=[c for c in probabilities if c in verdicts and verdicts[c].drifted],
    )


def _titled(page: str, title: str | None) -> str:
    """Evidently's page has no title of its own (every report reads "Report"): put the
    batch and file in the browser tab and as a heading, so two open reports are told apart."""
    if not title:
        return page
    text = html.escape(title)
    page = page.replace("<head>", f"<head>\n    <title>{text}</title>", 1)
    return page.replace("<body>", f"<body>\n    <h1 style=\"font-family: sans-serif; "
                                  f"margin: 16px 24px 0\">{text}</h1>", 1)


class _Prebuilt:
    """A widget or DashboardInfo stand-in whose `.dict()` is already computed (see
    `_report_html`)."""

    def __init__(self, data: dict[str, Any], id: str = "") -> None:
        self.data, self.id = data, id

    def dict(self) -> dict[str, Any]:
        return self.data


def _report_html(snapshot: Any, model: dict[str, Any]) -> str:
    """The page `snapshot.get_html_str(as_iframe=False)` writes, from the widget dicts of
    `model` (`snapshot.dump_dict()`, which `snapshot.json` needs anyway).

    Evidently turns every widget into a dict twice, once for the page and once for the
    snapshot: pydantic's `.dict()` walks each plotly figure value by value, ~0.1x the drift
    report's own time each. This is its `render_widgets` with the snapshot's dicts in place
    of the second walk; tests/test_reports_html.py compares the page with Evidently's."""
    from evidently.legacy.model.widget import AdditionalGraphInfo
    from evidently.legacy.renderers.base_renderer import DetailsInfo
    from evidently.legacy.renderers.html_widgets import group_widget
    from evidently.legacy.utils.dashboard import TemplateParams, file_html_template

    group = group_widget(title="", widgets=list(snapshot._widgets))
    page = group_widget(title="", widgets=[]).dict()
    page.update(id=group.id, widgets=model["widgets"])
    widgets = [(group, page), *zip(snapshot._tests_widgets, model["tests_widgets"], strict=True)]
    graphs = [DetailsInfo(title="", info=g.params if isinstance(g, AdditionalGraphInfo) else g,
                          id=g.id) for w, data in widgets for g in _graphs(w, data)]
    # shallow copies: the template pops `additionalGraphs` from the top-level widgets
    info = {"name": "Report", "widgets": [dict(data) for _, data in widgets]}
    return file_html_template(TemplateParams(
        dashboard_id="metric_" + str(uuid.uuid4()).replace("-", ""),
        dashboard_info=_Prebuilt(info),  # type: ignore[arg-type]
        additional_graphs={f"{d.id}": d.info.data if isinstance(d.info, _Prebuilt) else d.info
                           for d in graphs}))


def _graphs(widget: Any, data: dict[str, Any]) -> list[Any]:
    """`widget.get_additional_graphs()`, with each widget among them replaced by its dict
    in `data` (the widget's dict) wrapped as `_Prebuilt`: the same walk, in the same order."""
    from evidently.legacy.model.widget import BaseWidgetInfo

    own = [_Prebuilt(d, g.id) if isinstance(g, BaseWidgetInfo) else g
           for g, d in zip(widget.additionalGraphs, data["additionalGraphs"], strict=True)]
    return own + [g for w, d in zip(widget.widgets, data["widgets"], strict=True)
                  for g in _graphs(w, d)]


def _write_page(snapshot: Any, path: Path, title: str | None) -> dict[str, Any]:
    """The snapshot's HTML page at `path`; returns its dict (`snapshot.dump_dict()`)."""
    model = snapshot.dump_dict()
    path.write_text(_titled(_report_html(snapshot, model), title), encoding="utf-8")
    return model


def merged(base: dict[str, Any], more: dict[str, Any]) -> dict[str, Any]:
    """`base` (a snapshot's dict) with the metrics and widgets of `more` after its own, so
    the Evidently workspace stores both reports as one snapshot of the batch."""
    return {**base, "metric_results": {**base["metric_results"], **more["metric_results"]},
            "top_level_metrics": [*base["top_level_metrics"], *more["top_level_metrics"]],
            "widgets": [*base["widgets"], *more["widgets"]],
            "tests_widgets": [*base["tests_widgets"], *more["tests_widgets"]]}


def save_report(result: DriftResult, out_dir: Path, quality: Any = None,
                quality_title: str | None = None) -> dict[str, Path]:
    """Write the HTML report (for people), its JSON, our summary, and the snapshot itself
    (`snapshot.json`, which `Snapshot.load` reads back for the Evidently workspace).

    `quality` (multiclass, once labels exist: Evidently's classification quality,
    tasks/monitoring/evidently_metrics.py) gets its own page, `quality.html`, and joins
    `snapshot.json`, so the workspace's snapshot of the batch holds both reports.

    The snapshot is turned into dicts once, for both the page and `snapshot.json`, and the
    JSON is encoded by the C encoder (`json.dumps`; Evidently's `save_json` streams through
    the pure-Python one): the same text either way."""
    from evidently.legacy.utils import NumpyEncoder

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"summary": out_dir / "summary.json"}
    paths["summary"].write_text(json.dumps(result.to_dict(), indent=2))
    if result.snapshot is not None:
        paths["html"], paths["json"] = out_dir / "drift.html", out_dir / "drift.json"
        paths["snapshot"] = out_dir / "snapshot.json"
        with _quiet():
            model = _write_page(result.snapshot, paths["html"], result.title)
            paths["json"].write_text(json.dumps(result.snapshot.dict(), cls=NumpyEncoder),
                                     encoding="utf-8")
            if quality is not None:
                paths["quality"] = out_dir / "quality.html"
                model = merged(model, _write_page(quality, paths["quality"], quality_title))
            paths["snapshot"].write_text(json.dumps(model, cls=NumpyEncoder))
    return paths
