"""Adversarial validation: can a classifier tell the reference from the current batch?

Per-column tests say *that* a column moved; a domain classifier also catches joint shifts
no single column shows, and its feature importances say *which* features carry the shift.
A cross-validated AUC near 0.5 means the two samples are indistinguishable. Kept cheap on
purpose (a sample per side, few shallow trees, 3 folds): it runs on every batch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tasks.data.spec import DatasetSpec

MAX_ROWS_PER_SIDE = 5000
FOLDS = 3
TREES = 40
TOP = 3
MODEL_PARAMS = {"n_estimators": TREES, "learning_rate": 0.1, "num_leaves": 15,
                "min_child_samples": 20, "subsample": 0.8, "subsample_freq": 1,
                "colsample_bytree": 1.0, "n_jobs": 1, "verbose": -1}


@dataclass
class AdversarialResult:
    auc: float  # cross-validated ROC AUC of reference-vs-current; 0.5 = no difference
    importance: dict[str, float]  # share of total split gain, by feature, largest first
    rows_per_side: int
    top_features: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _encode(frame: pd.DataFrame, spec: DatasetSpec, categories: dict[str, pd.Index]
            ) -> pd.DataFrame:
    """Categoricals as shared integer codes (unseen on one side = its own code)."""
    X = frame[spec.features].copy()
    for col, cats in categories.items():
        X[col] = pd.Categorical(X[col].astype(str), categories=cats).codes.astype("int32")
    for col in spec.numerical_features:
        X[col] = pd.to_numeric(X[col], errors="coerce").astype(float)
    return X


def domain_classifier(reference: pd.DataFrame, current: pd.DataFrame, spec: DatasetSpec, *,
                      max_rows: int = MAX_ROWS_PER_SIDE, seed: int = 0,
                      min_importance: float = 0.1) -> AdversarialResult:
    """Cross-validated AUC of a LightGBM that tells `current` rows from `reference` rows.

    `top_features` are those carrying at least `min_importance` of the split gain, largest
    first (at most TOP); they name what moved when the AUC says something did."""
    import lightgbm as lgb
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    n = min(len(reference), len(current), max_rows)
    if n < 2 * FOLDS:
        return AdversarialResult(float("nan"), {}, n)
    ref = reference.sample(n=n, random_state=seed) if len(reference) > n else reference
    cur = current.sample(n=n, random_state=seed) if len(current) > n else current
    categories = {c: pd.Index(sorted(set(ref[c].astype(str)) | set(cur[c].astype(str))))
                  for c in spec.categorical_features}
    X = pd.concat([_encode(ref, spec, categories), _encode(cur, spec, categories)],
                  ignore_index=True)
    y = np.r_[np.zeros(len(ref)), np.ones(len(cur))]
    scores, gain = np.zeros(len(y)), np.zeros(X.shape[1])
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed)
    for train, test in folds.split(X, y):
        model = lgb.LGBMClassifier(**MODEL_PARAMS, random_state=seed, importance_type="gain")
        model.fit(X.iloc[train], y[train],
                  categorical_feature=list(categories) or "auto")
        scores[test] = model.predict_proba(X.iloc[test])[:, 1]
        gain += model.feature_importances_
    share = gain / gain.sum() if gain.sum() > 0 else gain
    importance = dict(sorted(((c, float(v)) for c, v in zip(X.columns, share, strict=True)),
                             key=lambda kv: -kv[1]))
    top = [c for c, v in importance.items() if v >= min_importance][:TOP]
    return AdversarialResult(float(roc_auc_score(y, scores)), importance, n, top)
