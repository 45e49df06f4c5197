"""Why auto trails the best fixed strategy on Bike Sharing weathersit (macro-F1, issue 34).

Runs benchmarks/adaptation.py as given (its report and --trace), remembering the model each
policy scored on each month, then prints per month: macro-F1 and log loss of the policy's
champion and of half-life 2, the predicted share of the rare classes (3, 4) and of class 2
under each and in the truth, and what other decisions over the same champion would have
scored (its heaviest member alone; the geometric mean of its members).

    uv run --frozen python benchmarks/weathersit_diag.py --dataset bike_weathersit \
        --fixed-only --policies "auto;auto, best recipe"
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import benchmarks.adaptation as ad  # noqa: E402
from tasks.training.evaluate import truth_of  # noqa: E402
from tasks.training.multiclass import multiclass_metrics  # noqa: E402

CAUGHT: list[tuple[str | None, int, object]] = []
STATE: dict = {"label": None, "replay": None}


def shares(pred: np.ndarray, k: int) -> np.ndarray:
    """Share of rows per class position."""
    return np.bincount(pred, minlength=k) / max(len(pred), 1)


def install() -> None:
    """Wrap the replay so every scored model is remembered with the policy scoring it."""
    init, score, policy = ad.Replay.__init__, ad.Replay.score, ad.auto_policy

    def new_init(self, *a, **kw):
        init(self, *a, **kw)
        STATE["replay"] = self

    def new_score(self, model, i):
        if STATE["label"] is not None:
            CAUGHT.append((STATE["label"], i, model))
        return score(self, model, i)

    def new_policy(r, out, label, settings):
        STATE["label"] = label
        try:
            return policy(r, out, label, settings)
        finally:
            STATE["label"] = None
    ad.Replay.__init__, ad.Replay.score, ad.auto_policy = new_init, new_score, new_policy


def diagnose() -> None:
    """Per policy and month: the champion against half-life 2, and other decisions."""
    r = STATE["replay"]
    hl2 = next(g for g in r.grid if r.name(g) == "half-life 2")
    k = len(r.spec.classes)
    pd.set_option("display.width", 250)
    for label in dict.fromkeys(lbl for lbl, _, _ in CAUGHT):
        rows = []
        for lbl, i, champ in CAUGHT:
            if lbl != label:
                continue
            frame = r.frames[i]
            y = truth_of(frame, r.spec)
            p_auto, p_hl2 = champ.score(frame), r.fit(r.history(i - 1), hl2).score(frame)
            m_auto, m_hl2 = multiclass_metrics(p_auto, y), multiclass_metrics(p_hl2, y)
            row = {"month": r.batches[i].label, "members": len(champ.members) or 1,
                   "f1": m_auto["macro_f1"], "hl2 f1": m_hl2["macro_f1"],
                   "ll": m_auto["log_loss"], "hl2 ll": m_hl2["log_loss"]}
            if champ.members:
                top = max(champ.members, key=lambda mw: mw[1])[0]
                row["top member f1"] = multiclass_metrics(top.score(frame), y)["macro_f1"]
                logs = sum(w * np.log(np.clip(m.score(frame), 1e-15, 1))
                           for m, w in champ.members)
                geo = np.exp(logs)
                row["geo f1"] = multiclass_metrics(geo / geo.sum(1, keepdims=True),
                                                   y)["macro_f1"]
            for name, p in (("", p_auto), ("hl2 ", p_hl2)):
                s = shares(np.argmax(p, 1), k)
                row[f"{name}rare%"], row[f"{name}c2%"] = 100 * s[2:].sum(), 100 * s[1]
            t = shares(y[y >= 0], k)
            row["true rare%"], row["true c2%"] = 100 * t[2:].sum(), 100 * t[1]
            rows.append(row)
        t = pd.DataFrame(rows).set_index("month")
        print(f"\ndiagnosis, {label} (its champion each month) vs half-life 2:")
        print(t.round(3).to_string())
        print("means: " + ", ".join(f"{c} {v:.4f}" for c, v in t.mean().items()))


if __name__ == "__main__":
    install()
    ad.main(sys.argv[1:])
    diagnose()
