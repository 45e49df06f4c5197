"""The promotion gate: promote a challenger on evidence, not on a point estimate.

A few hundred recent rows make a noisy point estimate, and a gate that reads only the
point promotes noise about half the time when the models are equal. So champion and
challenger are scored on the same held-out window, the rows are resampled together
(paired bootstrap) and the gate reads the lower end of the interval of the gain. The gain
is `tasks.training.evaluate.relative_gain` of the primary metric, so `min_delta` means the same for
accuracy and MAE.

Verdicts, checked in this order:
- bootstrap: no champion yet, the sanity checks hold and the challenger's primary metric
  on the window is defined. Passes. A first model has nothing to beat, so it needs no
  interval and neither `min_rows` nor `min_class_rows`: with yearly batches of 365 daily
  rows the window (30%) was under 200 rows, so no champion could ever be made ("Your own
  data"). Its sanity failing, or a metric that is undefined there (it becomes the baseline
  decay is measured against), is a fail; an empty window is insufficient.
- insufficient: the window cannot prove a gain (fewer than `min_rows` labelled rows, or
  (classification) fewer than `min_class_rows` of either class) and the champion is not
  stale; or it is too small to judge at all (under MIN_WINDOW_ROWS rows, or a class under
  `class_floor`). "Not enough evidence": never a pass, and the reason says why the
  champion stays. A window of one class rewards whichever model says that class most: a
  batch labelled all 1 made a worse challenger look +90% better (issue 21).
- small windows (issue 31): a window that cannot prove a gain but can be judged, against
  a stale champion, goes on to the refresh test below (never "clear": its interval is not
  trusted to prove a gain). Yearly batches of 365 rows gave 109-row windows, and under
  the old rule every year was "not enough evidence": the champion served 45 years.
- fail: a sanity check failed (non-finite or constant predictions, features or task kind
  not the serving contract), or a slice degraded (below), or the point gain <= min_delta.
- clear: the lower bound of the 95% interval of the gain > min_delta, no slice degraded.
  Passes.
- marginal: the point gain > min_delta but the lower bound <= min_delta, no slice
  degraded. Not a pass: `auto` keeps the champion, `partial` asks a person.
- refresh (only with `stale=True`: monitoring saw drift or decay behind this retrain, as
  Training.refresh_on asks, and the challenger learned from rows newer than any the
  champion saw; tasks.gate.decide.champion_stale): not clear, and the champion is not proven
  better either, i.e. the lower bound of the champion's gain over the challenger (the same
  test, roles swapped) is not above |min_delta| (a negative min_delta is a tolerance for
  the challenger, and the champion must prove the same margin). A pass: `auto` promotes,
  `partial` asks. A champion that is proven better fails the challenger.

Why the burden of proof flips for a stale champion: once monitoring has seen the data move
(or the champion decay), keeping the champion is not the neutral choice, since it ages by
a batch every time it is kept. A gate window of a few hundred autocorrelated rows rarely
proves a real gain of a few percent (the interval is often +-7%), so a gate that always
asked the challenger for proof kept stale champions: on Elec2 it rejected 16 of 26 monthly
retrains and lost 3 points of accuracy to plain monthly refits (benchmarks/adaptation.py).
Without that evidence (a forced retrain, or stale=False) the champion keeps the benefit of
the doubt: an equally good challenger is not promoted.

A slice (one value of `slice_feature` with at least `min_slice_rows` rows) degrades when its
point gain is below -max_slice_drop AND its interval lies wholly below zero: small slices
are noisy, and a guard that tripped on noise would block every promotion. The intervals
share the 95% among the judged slices (`slice_level`, Bonferroni): k slices each at
1 - 0.05/k.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import pandas as pd

from core.clean import json_safe
from tasks.data.spec import DatasetSpec
from tasks.gate.bootstrap import (
    MAX_ROWS,
    auto_block_rows,
    draws_for,
    paired_bootstrap,
    row_losses,
    super_block_rows,
)
from tasks.gate.classes import class_notes, multiclass_shortfall, same_everywhere, single_class
from tasks.training.evaluate import evaluate, relative_gain
from tasks.training.multiclass import class_codes
from tasks.training.train import binary_target, split_gate_window

__all__ = ["GateResult", "bootstrap_blocker", "gate", "paired_bootstrap",
           "sanity_checks"]  # the statistic too

LEVEL = 0.95
PASSING = ("clear", "bootstrap", "refresh")
# as DatasetSpec.higher_is_better, for secondary metrics
HIGHER = ("accuracy", "roc_auc", "macro_f1", "balanced_accuracy")
# Rows of each class a gate window needs to prove a gain (classification; the default of
# Training.gate_min_class_rows). 30 of the rarer class keep its share's standard error near
# 0.07 relative on a 30% class; below, a metric gain is mostly which class the window held.
MIN_CLASS_ROWS = 30
# A window too small to prove a gain still judges a stale champion (the small-window rule,
# module docstring) if it has at least this many labelled rows, and each class at least
# `class_floor(n)` rows: a window of one class (issue 21) is never judged.
MIN_WINDOW_ROWS = 20
MIN_CLASS_SHARE = 0.1
MIN_CLASS_FLOOR = 5
# Rows a first model needs to train on: LightGBM's min_child_samples is 20, so below ~50
# rows a tree has barely one split and the model is close to a constant (as
# tasks.training.recipe.MIN_TRAIN_ROWS, below which a backtest fold is not scored).
MIN_FIT_ROWS = 50


class Scorer(Protocol):
    features: list[str]

    def score(self, frame: pd.DataFrame) -> np.ndarray: ...


@dataclass
class GateResult:
    verdict: str  # clear | refresh | marginal | fail | insufficient | bootstrap
    passed: bool
    metric: str
    min_delta: float
    challenger: float
    champion: float | None
    gain: float | None
    ci_low: float | None
    ci_high: float | None
    n_rows: int
    n_resamples: int
    block_rows: int
    reason: str
    stale: bool = False  # drift or decay seen, and the challenger learned from newer rows
    champion_ci_low: float | None = None  # lower bound of the champion's gain, when stale
    slices: list[dict] = field(default_factory=list)
    sanity: list[str] = field(default_factory=list)
    challenger_metrics: dict[str, float] = field(default_factory=dict)
    champion_metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe: NaN becomes None, numpy scalars become Python numbers."""
        return json_safe(asdict(self))

    def to_rows(self) -> list[dict[str, Any]]:
        """One row per metric and per slice, for a table artifact."""
        rows = [{"scope": "overall", "metric": self.metric, "rows": self.n_rows,
                 "champion": self.champion, "challenger": self.challenger, "gain": self.gain,
                 "ci_low": self.ci_low, "ci_high": self.ci_high, "ok": self.passed}]
        for name, value in self.challenger_metrics.items():
            if name == self.metric:
                continue
            old = self.champion_metrics.get(name)
            gain = None if old is None else relative_gain(value, old, name in HIGHER)
            rows.append({"scope": "overall", "metric": name, "rows": self.n_rows,
                         "champion": old, "challenger": value, "gain": gain,
                         "ci_low": None, "ci_high": None, "ok": None})
        for s in self.slices:
            rows.append({"scope": f"{s['feature']}={s['value']}", "metric": self.metric,
                         "rows": s["rows"], "champion": s["champion"],
                         "challenger": s["challenger"], "gain": s["gain"],
                         "ci_low": s["ci_low"], "ci_high": s["ci_high"], "ok": s["ok"]})
        return json_safe(rows)


class _Fixed:
    """Scores already computed, so `evaluate` gives the point metrics without rescoring."""

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        return self.scores


def sanity_checks(challenger: Scorer, champion: Scorer | None, scores: np.ndarray,
                  spec: DatasetSpec) -> list[str]:
    """What would make the challenger unsafe to serve, whatever its metric says."""
    problems = []
    if not np.all(np.isfinite(scores)):
        problems.append("non-finite predictions")
    elif np.ndim(scores) == 2 and same_everywhere(scores):
        problems.append("constant predictions (the same class probabilities on every row)")
    elif len(scores) and np.std(scores) <= 1e-9 * max(1.0, abs(float(np.mean(scores)))):
        problems.append(f"constant predictions ({float(scores[0]):.4g} on every row)")
    if list(challenger.features) != list(spec.features):
        problems.append(f"features {list(challenger.features)} are not the spec's "
                        f"{list(spec.features)}")
    if champion is not None and list(champion.features) != list(challenger.features):
        problems.append("features differ from the champion's: the serving signature would change")
    kind = getattr(challenger, "is_classifier", None)
    if kind is not None and kind != (spec.task != "regression"):
        problems.append(f"a {'classifier' if kind else 'regressor'} for a {spec.task} task")
    cats = getattr(challenger, "categories", None)
    if cats is not None and sorted(cats) != sorted(spec.categorical_features):
        problems.append(f"categorical encodings {sorted(cats)} are not the spec's "
                        f"{sorted(spec.categorical_features)}")
    return problems


def _truth(frame: pd.DataFrame, spec: DatasetSpec) -> np.ndarray:
    if spec.task == "multiclass":
        return class_codes(frame, spec).astype(float)
    if spec.task == "classification":
        return binary_target(frame, spec).astype(float)
    return frame[spec.target].to_numpy(dtype=float)


def class_floor(n: int, min_class_rows: int = MIN_CLASS_ROWS) -> int:
    """Rows of the rarer class a window of `n` rows needs for any verdict on a stale champion:
    MIN_CLASS_SHARE of the window, at least MIN_CLASS_FLOOR, at most `min_class_rows`.

    Derived from the window, so a window of 30 rows on a 30% class (9 rows) is judged, while
    one where a class is almost absent, whose metric says only which class a model prefers,
    is not."""
    return max(MIN_CLASS_FLOOR, min(min_class_rows, math.ceil(MIN_CLASS_SHARE * n)))


def _class_shortfall(rows: pd.DataFrame, spec: DatasetSpec, min_class_rows: int) -> str | None:
    """Why a classification window cannot judge: a class with too few rows; else None."""
    if spec.task == "multiclass" and len(rows):
        return multiclass_shortfall(rows, spec, min_class_rows)
    if spec.task != "classification" or not len(rows):
        return None
    positive = int(binary_target(rows, spec).sum())
    counts = {"positive": positive, "negative": len(rows) - positive}
    if min(counts.values()) >= min_class_rows:
        return None
    return (f"the gate window has {counts['positive']} positive and {counts['negative']} "
            f"negative rows; each class needs {min_class_rows}")


def too_small(rows: pd.DataFrame, spec: DatasetSpec, min_rows: int,
              min_class_rows: int) -> str | None:
    """Why the window cannot prove a gain (too few rows, or of a class); else None."""
    if len(rows) < min_rows:
        return f"{len(rows)} labelled rows < {min_rows}"
    return _class_shortfall(rows, spec, min_class_rows)


def unjudgeable(rows: pd.DataFrame, spec: DatasetSpec, min_class_rows: int) -> str | None:
    """Why even a stale champion cannot be judged on the window: under MIN_WINDOW_ROWS rows,
    or a class under `class_floor`; else None."""
    if len(rows) < MIN_WINDOW_ROWS:
        return f"{len(rows)} labelled rows < {MIN_WINDOW_ROWS}"
    return _class_shortfall(rows, spec, class_floor(len(rows), min_class_rows))


def bootstrap_blocker(history: pd.DataFrame, spec: DatasetSpec, gate_rows: int,
                      window_days: float | None = None) -> str | None:
    """Why no first champion can be made from these labelled rows, in one line; else None.

    Checked before training, so the user reads what the data lacks rather than a constant
    model's sanity failure: too few rows to fit (MIN_FIT_ROWS) or none held out to check
    the model on, or (classification) a single class in the training rows, from which a
    classifier learns only that class."""
    split = split_gate_window(history, spec, gate_rows, window_days)
    train, held = split.train, split.gate
    if len(train) < MIN_FIT_ROWS or not len(held):
        return (f"no first champion: {len(history)} labelled rows give {len(train)} to train "
                f"on and {len(held)} to check on; a first model needs at least "
                f"{MIN_FIT_ROWS} rows to train on and 1 to check on: land more batches and "
                f"run again")
    if spec.task == "multiclass":
        return single_class(train, spec)
    if spec.task == "classification":
        positive = int(binary_target(train, spec).sum())
        if positive in (0, len(train)):
            value = train[spec.target].dropna().iloc[0]
            value = value.item() if hasattr(value, "item") else value
            return (f"no first champion: all {len(train)} training rows have "
                    f"{spec.target}={value!r}; a classifier needs both classes: land batches "
                    f"with both and run again")
    return None


def _first_model(n: int, base: dict, name: str) -> GateResult:
    """The verdict on a first model (no champion): the sanity checks and a defined metric,
    no interval and no row minimum (module docstring)."""
    if not n:
        return GateResult("insufficient", False, reason="not enough evidence: no labelled rows "
                          "to check a first model on", **base)
    if base["sanity"]:
        return GateResult("fail", False, reason="fail: sanity: " + "; ".join(base["sanity"]),
                          **base)
    if not math.isfinite(base["challenger"]):
        return GateResult("fail", False, reason=f"fail: {name} of a first model is undefined "
                          f"on the {n} rows of the gate window", **base)
    # no "bootstrap:" prefix: the promotion's reason already starts with the decision's
    return GateResult("bootstrap", True, reason=f"first model, no champion to beat: {name} "
                      f"{base['challenger']:.4f} on {n} rows", **base)


def slice_level(values: pd.Series, min_rows: int) -> float:
    """The confidence level of each slice's interval: LEVEL shared out over the judged
    slices (Bonferroni), so that the guard as a whole trips on noise at most 5% of the time.

    Each slice at 95% would make seven day-of-week slices trip on noise about one window in
    six: on Elec2 the guard failed two challengers that were 7% and 1.5% better overall,
    each on a slice of one or two days, and the champion served a month longer."""
    judged = int((values.value_counts() >= min_rows).sum())
    return 1 - (1 - LEVEL) / max(1, judged)


def _slices(feature: str, draws: dict, min_rows: int, max_drop: float) -> list[dict]:
    """Per slice value: points, interval and whether it degrades (module docstring)."""
    out = []
    for j, value in enumerate(draws["values"]):
        rows = int(draws["rows"][j])
        judged = rows >= min_rows
        gain, lo, hi = draws["gain"][j], draws["ci_low"][j], draws["ci_high"][j]
        ok = not (judged and gain < -max_drop and hi < 0)
        out.append({"feature": feature, "value": value, "rows": rows,
                     "champion": draws["champion"][j], "challenger": draws["challenger"][j],
                     "gain": gain, "ci_low": lo, "ci_high": hi, "judged": judged, "ok": ok})
    return out


def gate(challenger: Scorer, champion: Scorer | None, window: pd.DataFrame,
         spec: DatasetSpec, *, min_delta: float, min_rows: int = 200,
         slice_feature: str | None = None, max_slice_drop: float = 0.05,
         min_slice_rows: int = 50, n_resamples: int = 1000, seed: int = 0,
         block_rows: int | None = None, stale: bool = False,
         min_class_rows: int = MIN_CLASS_ROWS, small_windows: bool = True) -> GateResult:
    """Judge the challenger against the champion on the same held-out recent window.

    `block_rows` None picks the block length from the window (tasks.gate.bootstrap). `stale`
    says monitoring saw evidence against the champion and the challenger learned from rows
    newer than any the champion saw: then the champion must prove its gain to stay
    (module docstring). `small_windows` False turns the small-window rule off: a window too
    small to prove a gain is "not enough evidence" whatever the champion, as before issue 31
    (what benchmarks/adaptation.py compares the rule with)."""
    name = spec.primary_metric
    if slice_feature is not None and slice_feature not in window.columns:
        raise ValueError(f"slice feature {slice_feature!r} is not a column of the gate window")
    rows = window[window[spec.target].notna()].sort_values(spec.time_column, kind="stable")
    rows = rows.reset_index(drop=True)
    n = len(rows)
    scores = challenger.score(rows) if n else np.array([])
    ch_metrics = evaluate(_Fixed(scores), rows, spec) if n else {}
    sanity = sanity_checks(challenger, champion, scores, spec)
    base = dict(metric=name, min_delta=min_delta, challenger=ch_metrics.get(name, math.nan),
                champion=None, gain=None, ci_low=None, ci_high=None, n_rows=n, n_resamples=0,
                block_rows=0, sanity=sanity, challenger_metrics=ch_metrics, stale=stale)
    if champion is None:
        return _first_model(n, base, name)
    small = too_small(rows, spec, min_rows, min_class_rows)
    if small and not small_windows:
        return GateResult("insufficient", False, reason=f"not enough evidence: {small}",
                          **base)
    if small and not stale:
        return GateResult("insufficient", False, reason=f"not enough evidence: {small}: too "
                          "few to prove a gain, and the champion is not stale (no drift or "
                          "decay behind this retrain that training.refresh_on counts, or a "
                          "challenger on no newer rows), so it stays", **base)
    floor = unjudgeable(rows, spec, min_class_rows) if small else None
    if floor:
        return GateResult("insufficient", False, reason=f"not enough evidence: {floor}: too "
                          "few to judge even a stale champion, so it stays", **base)
    if sanity:
        return GateResult("fail", False, reason="fail: sanity: " + "; ".join(sanity), **base)
    old = champion.score(rows)
    y = _truth(rows, spec)
    block = (auto_block_rows(row_losses(name, y, scores) - row_losses(name, y, old))
             if block_rows is None else max(1, int(block_rows)))
    overall = draws_for(y, old, scores, spec, block, n_resamples, seed, LEVEL)
    slices: list[dict] = []
    if slice_feature is not None:
        level = slice_level(rows[slice_feature], min_slice_rows)
        slices = _slices(slice_feature, draws_for(y, old, scores, spec, block, n_resamples, seed,
                                                  level, rows[slice_feature]),
                         min_slice_rows, max_slice_drop)
    block = super_block_rows(n, block) if n > MAX_ROWS else block
    cp_metrics = evaluate(_Fixed(old), rows, spec)
    gain = relative_gain(ch_metrics[name], cp_metrics[name], spec.higher_is_better)
    lo, hi = overall["ci_low"][0], overall["ci_high"][0]
    base.update(champion=cp_metrics[name], gain=gain, ci_low=lo, ci_high=hi,
                n_resamples=n_resamples, block_rows=block, champion_metrics=cp_metrics)
    bad = [s for s in slices if not s["ok"]]
    stats = (f"{name} {ch_metrics[name]:.4f} vs champion {cp_metrics[name]:.4f}, gain "
             f"{gain:+.2%} (95% CI {lo:+.2%}..{hi:+.2%}, {n} rows, block {block}), "
             f"needs {min_delta:+.2%}") + class_notes(rows, spec, min_class_rows, old, scores)
    if bad:
        worst = min(bad, key=lambda s: s["gain"])
        verdict, why = "fail", (f"slice {worst['feature']}={worst['value']} degrades "
                                f"{worst['gain']:+.2%} (bound -{max_slice_drop:.0%}); ")
    elif lo > min_delta and not small:
        verdict, why = "clear", ""
    elif stale:
        back = draws_for(y, scores, old, spec, block, n_resamples, seed, LEVEL)["ci_low"][0]
        base["champion_ci_low"] = back
        verdict, why = (("fail", f"the champion is proven better (its gain's lower bound "
                                 f"{back:+.2%}); ") if back > abs(min_delta) else
                        ("refresh", (f"small window ({small}), too few to prove a gain: "
                                     if small else "") +
                         f"stale champion: the challenger learned from newer rows "
                         f"and the champion is not proven better (its gain's lower "
                         f"bound {back:+.2%}); "))
    elif gain > min_delta:
        verdict, why = "marginal", "lower bound not above min_delta; "
    else:
        verdict, why = "fail", ""
    return GateResult(verdict, verdict in PASSING, reason=f"{verdict}: {why}{stats}",
                      slices=slices, **base)
