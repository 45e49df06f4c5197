"""The model as MLflow sees it: LightGBM plus what it needs to score raw batch rows.

MLflow's pyfunc of an sklearn-API LightGBM returns labels only, and pandas `category`
columns break signature enforcement (STACK_NOTES). Wrapping the booster with its category
mapping keeps the served contract "raw columns in, label and score out".

A version is registered as MLflow "models from code": `model_code.py` plus the state as plain
files (LightGBM's own text model, JSON), which `load_context` reads back. Nothing is
cloudpickled, so loading runs no code stored in the registry, MLflow has nothing to warn
about, and serving needs LightGBM's `Booster` only, never the scikit-learn estimator that
trained it. Versions registered before (a cloudpickled instance holding that estimator)
still load: they unpickle into this class with `estimator` set and score through it.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

if TYPE_CHECKING:  # the served model needs no spec class: its spec is a plain dict
    from tasks.data.spec import DatasetSpec

FORMAT = 1  # of the state file; `load_context` refuses one it does not know
BOOSTER_ARTIFACT, STATE_ARTIFACT = "booster", "state"
MEMBER_ARTIFACT = "member-"  # + the member's position, for an ensemble's boosters
CODE_FILE = Path(__file__).with_name("model_code.py")
# From this many rows an ensemble scores its members two at a time (each booster on one
# thread: LightGBM releases the GIL, and the scores are the serial ones): monitoring and
# probation score the champion on every batch, and twenty members in a row made the demo's
# monitor step half as slow again. Serving's few rows stay on the calling thread.
PARALLEL_ROWS = 1000


class GreenlightModel(PythonModel):
    """A fitted booster with its feature list, category codes and label names."""

    def __init__(self, estimator: Any, spec: DatasetSpec, categories: dict[str, list[Any]],
                 labels: list[Any] | None = None) -> None:
        # Exactly the attributes of the cloudpickled versions: a fitted model pickles as before.
        self.estimator = estimator  # the sklearn-API estimator `fit` sets; None once loaded
        self.spec = spec.model_dump()
        self.features = list(spec.features)
        self.categories = categories
        self.labels = labels  # [negative, positive] for classification; K classes multiclass

    @classmethod
    def from_code(cls) -> GreenlightModel:
        """The empty model `model_code.py` hands MLflow; `load_context` fills it."""
        return cls.__new__(cls)

    @property
    def booster(self) -> Any:
        """What scores: the booster loaded from a registered version, else the estimator's."""
        loaded = self.__dict__.get("_booster")
        return loaded if loaded is not None else self.estimator.booster_

    @property
    def performance(self) -> str | None:
        """The label-free performance estimator fitted for this model
        (tasks/monitoring/estimation.py, as its JSON), or None: set after the gate, kept
        with the version, read by monitoring and probation."""
        return self.__dict__.get("_performance")

    @performance.setter
    def performance(self, value: str | None) -> None:
        self.__dict__["_performance"] = value

    @property
    def members(self) -> list[tuple[GreenlightModel, float]]:
        """The weighted models this one averages (an ensemble of recipes), or [] for a
        single booster. Versions registered before ensembles have none."""
        return self.__dict__.get("_members") or []

    @classmethod
    def ensemble(cls, members: list[GreenlightModel], weights: list[float]) -> GreenlightModel:
        """One model scoring the weighted mean of `members`' scores (probabilities, or
        estimates): a challenger that hedges between recipes is still one version, served
        and gated like any other. Its own categories and labels are the first member's (the
        longest memory: the drift monitor and the estimator encode with them); each member
        encodes rows with its own. A model given twice (two recipes that fit the same
        model, tasks.training.sequence.same_fits) is one member with both weights."""
        if not members or len(members) != len(weights) or min(weights) < 0 or not sum(weights):
            raise ValueError(f"an ensemble needs members and non-negative weights: "
                             f"{len(members)} members, weights {weights}")
        total = float(sum(weights))
        first = members[0]
        model = cls.from_code()
        model.__dict__.update(estimator=None, spec=first.spec, features=list(first.features),
                              categories=first.categories, labels=first.labels,
                              _booster=first.booster)
        merged: dict[int, tuple[GreenlightModel, float]] = {}
        for m, w in zip(members, weights, strict=True):
            merged[id(m)] = (m, merged.get(id(m), (m, 0.0))[1] + float(w) / total)
        model.__dict__["_members"] = list(merged.values())
        return model

    @property
    def is_classifier(self) -> bool:
        return self.labels is not None

    def as_files(self, directory: Path) -> tuple[Path, dict[str, str]]:
        """The model as MLflow logs it from code: the code file, and the artifacts it reads.

        JSON must give back exactly the categories and labels (codes and label names are
        positions in these lists): a value it would change fails here, not when served."""
        booster, state_file = directory / "booster.txt", directory / "state.json"
        self.booster.save_model(str(booster))
        state = {"format": FORMAT, "spec": self.spec, "features": self.features,
                 "categories": self.categories, "labels": self.labels,
                 "performance": self.performance}
        artifacts = {BOOSTER_ARTIFACT: str(booster), STATE_ARTIFACT: str(state_file)}
        if self.members:  # each member's booster as its own LightGBM text file
            state["members"] = []
            for i, (member, weight) in enumerate(self.members):
                path = directory / f"member-{i}.txt"
                member.booster.save_model(str(path))
                artifacts[f"{MEMBER_ARTIFACT}{i}"] = str(path)
                state["members"].append({"categories": member.categories,
                                         "labels": member.labels, "weight": weight})
        text = json.dumps(state, allow_nan=False)
        if json.loads(text) != state:
            raise ValueError("the model's categories or labels do not survive JSON: "
                             f"{self.categories!r}, {self.labels!r}")
        state_file.write_text(text)
        return CODE_FILE, artifacts

    def load_context(self, context: Any) -> None:
        """Read a version registered from code. A cloudpickled one has no artifacts: its
        state came with it."""
        if STATE_ARTIFACT not in (context.artifacts or {}):
            return
        state = json.loads(Path(context.artifacts[STATE_ARTIFACT]).read_text())
        if state.get("format") != FORMAT:
            raise ValueError(f"model state format {state.get('format')!r}: this greenlight "
                             f"reads format {FORMAT}")
        from lightgbm import Booster

        self.estimator = None
        self.spec, self.features = state["spec"], state["features"]
        self.categories, self.labels = state["categories"], state["labels"]
        self.performance = state.get("performance")  # versions before estimation: None
        self._booster = Booster(model_file=context.artifacts[BOOSTER_ARTIFACT])
        members = []
        for i, member in enumerate(state.get("members") or []):
            model = type(self).from_code()
            model.__dict__.update(estimator=None, spec=self.spec, features=self.features,
                                  categories=member["categories"], labels=member["labels"],
                                  _booster=Booster(model_file=context.artifacts[
                                      f"{MEMBER_ARTIFACT}{i}"]))
            members.append((model, float(member["weight"])))
        self.__dict__["_members"] = members

    def encode(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Map categoricals to the training codes; unseen values become -1, which LightGBM
        treats as missing instead of failing."""
        X = frame[self.features].copy()
        for col, cats in self.categories.items():
            X[col] = pd.Categorical(X[col], categories=cats).codes.astype("int32")
        return X

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of the positive class, or the regression estimate: the booster's
        output, which is the sklearn estimator's `predict_proba(X)[:, 1]` (or `predict`) bit
        for bit. One thread, as the estimator was fitted (LGBM_PARAMS). An ensemble: the
        weighted mean of its members' scores."""
        if self.members:
            scores = _two_at_a_time([m for m, _ in self.members], frame) \
                if len(frame) >= PARALLEL_ROWS else [m.score(frame) for m, _ in self.members]
            return sum(w * s for (_, w), s in zip(self.members, scores, strict=True))
        return self.booster.predict(self.encode(frame), num_threads=1)

    def score_rows(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """`score` for a few already-validated JSON records, without pandas: for one row
        the frame and its category encoding cost ~40x the booster itself (serving's hot
        path). Same codes as `encode`: an unseen category is -1, a null is missing."""
        if self.members:
            return sum(w * m.score_rows(rows) for m, w in self.members)
        codes = {col: {v: i for i, v in enumerate(cats)} for col, cats in self.categories.items()}
        X = np.array([[codes[f].get(row[f], -1) if f in codes else
                       (np.nan if row[f] is None else row[f]) for f in self.features]
                      for row in rows], dtype="float64")
        # One thread: OpenMP's spin-up costs more than a few rows take, and on a busy machine
        # it turned a 0.02 ms p50 into a 10 ms p99.
        return self.booster.predict(X, num_threads=1)

    @property
    def is_multiclass(self) -> bool:
        """K >= 3 classes: `score` gives one probability column per class, in `labels`' order."""
        return self.labels is not None and len(self.labels) > 2

    def label(self, scores: np.ndarray) -> np.ndarray:
        """Class labels from positive-class probabilities (threshold 0.5), or (multiclass)
        the class of the largest probability of each row."""
        if np.ndim(scores) == 2:
            return np.asarray(self.labels, dtype=object)[np.argmax(scores, axis=1)]
        return np.where(scores >= 0.5, self.labels[1], self.labels[0])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None
                ) -> pd.DataFrame:
        scores = self.score(model_input)
        if not self.is_classifier:
            return pd.DataFrame({"prediction": scores})
        if np.ndim(scores) == 2:  # multiclass: the class, its confidence, each probability
            out = pd.DataFrame({"prediction": self.label(scores),
                                "score": scores.max(axis=1)})
            for i, c in enumerate(self.labels):
                out[f"proba_{c}"] = scores[:, i]
            return out
        return pd.DataFrame({"prediction": self.label(scores), "score": scores})

    def example(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Input rows for the signature, numbers as doubles: callers may send 3 or 3.0, and an
        integer schema would refuse missing values."""
        X = frame[self.features].copy()
        numeric = [c for c in self.features if c not in self.categories]
        X[numeric] = X[numeric].astype("float64")
        return X


def _two_at_a_time(models: list[GreenlightModel], frame: pd.DataFrame) -> list[np.ndarray]:
    """`[m.score(frame) for m in models]` on two threads where this process has two cores
    (kept here, not in core/: a served version loads this file alone)."""
    affinity = getattr(os, "sched_getaffinity", None)
    workers = min(2, len(models), len(affinity(0)) if affinity else os.cpu_count() or 1)
    if workers < 2:
        return [m.score(frame) for m in models]
    with ThreadPoolExecutor(workers, thread_name_prefix="greenlight-score") as pool:
        return list(pool.map(lambda m: m.score(frame), models))
