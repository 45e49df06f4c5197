"""The registered model format on a real MLflow SQLite store: logged from code (no
CloudPickle), scoring bit for bit as the estimator that trained it, and versions pickled the
old way still loading and serving."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest

from registry import promote, register, versions
from registry.store import Registry, fluent
from tasks.data.spec import DatasetSpec
from tasks.training.train import fit

CLASSIFICATION = DatasetSpec(name="t", time_column="ts", target="y", task="classification",
                             features=["x", "z", "colour"], categorical_features=["colour"],
                             primary_metric="accuracy", positive_class="yes")
REGRESSION = CLASSIFICATION.model_copy(update={"task": "regression", "primary_metric": "mae",
                                               "positive_class": None})


def _frame(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Numbers with gaps and a categorical column: what the encoding has to carry."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"ts": pd.date_range("2026-01-01", periods=n, freq="h"),
                       "x": rng.normal(size=n), "z": rng.normal(size=n),
                       "colour": rng.choice(["red", "green", "blue"], size=n)})
    df.loc[rng.choice(n, 30, replace=False), "z"] = np.nan
    signal = df.x + (df.colour == "red") - 0.5 * df.z.fillna(0)
    df["y"] = np.where(signal + rng.normal(scale=0.5, size=n) > 0.3, "yes", "no")
    return df


def _fit(spec: DatasetSpec, df: pd.DataFrame):
    if spec.task == "regression":
        df = df.assign(y=df.x * 2 + df.z.fillna(0) + (df.colour == "red"))
    return fit(df, spec, half_life_days=10, params={"n_estimators": 60}), df


def _register(reg: Registry, model, df: pd.DataFrame, batch_set: str) -> int:
    sample = model.example(df.head(5))
    return register.register(reg, python_model=model, input_example=sample,
                             output_example=model.predict(None, sample), reference=df,
                             batch_set=batch_set, params={}, metrics={}, tags={},
                             experiment="t-training").version


def _register_pickled(reg: Registry, model, df: pd.DataFrame) -> int:
    """A version exactly as greenlight registered every one before models from code: the
    GreenlightModel instance itself, cloudpickled, holding its sklearn-API estimator."""
    from mlflow.models import infer_signature

    sample = model.example(df.head(5))
    with fluent(reg.tracking_uri):
        with mlflow.start_run(experiment_id=reg.experiment_id("t-training")) as run:
            info = mlflow.pyfunc.log_model(
                name="model", python_model=model, input_example=sample,
                signature=infer_signature(sample, model.predict(None, sample)),
                conda_env=register._conda_env(register.PICKLED))
        register._ensure_model(reg)
        return int(reg.client.create_model_version(
            reg.model_name, source=info.model_uri, run_id=run.info.run_id,
            model_id=info.model_id).version)


def _rows(df: pd.DataFrame) -> list[dict]:
    """Records as a request carries them: JSON nulls for gaps."""
    out = [{k: None if isinstance(v, float) and np.isnan(v) else v for k, v in row.items()}
           for row in df[["x", "z", "colour"]].head(200).to_dict(orient="records")]
    out[0]["colour"], out[1]["z"] = "purple", None  # an unseen category, a missing value
    return out


class Warnings(logging.Handler):
    """Records at WARNING and above from MLflow's loggers, which do not propagate to root."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(record.getMessage())

    def __enter__(self) -> list[str]:
        for name in ("mlflow", "", "greenlight"):
            logging.getLogger(name).addHandler(self)
        return self.seen

    def __exit__(self, *exc: object) -> None:
        for name in ("mlflow", "", "greenlight"):
            logging.getLogger(name).removeHandler(self)


@pytest.mark.parametrize("spec", [CLASSIFICATION, REGRESSION], ids=["binary", "regression"])
def test_a_registered_version_scores_as_its_estimator_bit_for_bit(reg, spec):
    """Today's scores were the estimator's `predict_proba(X)[:, 1]` (or `predict`); the
    version loaded from LightGBM's text model gives exactly the same numbers, through
    `score`, the pyfunc `predict` and serving's `score_rows`."""
    from serving.models import load

    model, df = _fit(spec, _frame())
    version = _register(reg, model, df, f"bits-{spec.task}")
    loaded = versions.load_model(reg, version)
    assert loaded.estimator is None and loaded.booster is not model.booster
    fresh = _frame(400, seed=1)
    fresh.loc[0, "colour"] = "purple"
    X = model.encode(fresh)
    before = (model.estimator.predict_proba(X)[:, 1] if spec.task == "classification"
              else model.estimator.predict(X))
    assert np.array_equal(loaded.score(fresh), before)
    assert np.array_equal(model.score(fresh), before)
    out = loaded.predict(None, fresh)
    assert np.array_equal(out["prediction" if spec.task == "regression" else "score"], before)
    if spec.task == "classification":
        assert set(out["prediction"]) <= {"yes", "no"}
    rows = _rows(fresh)
    by_frame = model.estimator.predict_proba(model.encode(pd.DataFrame(rows)))[:, 1] \
        if spec.task == "classification" else model.estimator.predict(
            model.encode(pd.DataFrame(rows)))
    served = load(reg, version)
    assert np.array_equal(served.model.score_rows(rows), by_frame)
    assert (loaded.features, loaded.categories, loaded.labels) == (
        model.features, model.categories, model.labels)


def test_registration_logs_code_and_files_with_no_library_warning(reg):
    """No CloudPickle (MLflow's warning, and code run at load), explicit pins without
    scikit-learn or cloudpickle, and nothing at all at WARNING from the libraries."""
    import warnings

    model, df = _fit(CLASSIFICATION, _frame())
    with warnings.catch_warnings(record=True) as caught, Warnings() as logged:
        warnings.simplefilter("always")
        version = _register(reg, model, df, "files")
    assert logged == [] and [str(w.message) for w in caught] == []
    with fluent(reg.tracking_uri):
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{reg.model_name}/{version}"))
    assert not list(local.rglob("*.pkl"))
    assert {"model_code.py", "artifacts/booster.txt", "artifacts/state.json"} <= {
        str(p.relative_to(local)) for p in local.rglob("*")}
    pins = (local / "requirements.txt").read_text().split()
    assert pins == register._pip_requirements()
    assert not [p for p in pins if p.startswith(("scikit-learn", "cloudpickle"))]


def test_a_version_pickled_the_old_way_still_loads_and_serves(reg):
    """State dirs hold versions registered as a cloudpickled GreenlightModel: the cycle
    loads them (with their estimator) and a real server serves them, with the same scores
    as the same model registered from code."""
    from lightgbm import LGBMClassifier

    from serving.app import create_app
    from tests.serving_helpers import running

    model, df = _fit(CLASSIFICATION, _frame())
    assert set(vars(model)) == {"estimator", "spec", "features", "categories", "labels"}
    old = _register_pickled(reg, model, df)
    new = _register(reg, model, df, "same-model-from-code")
    promote.promote(reg, old, reason="an old state dir's champion")
    with Warnings() as logged:
        legacy = versions.load_model(reg, old)
    assert isinstance(legacy.estimator, LGBMClassifier)
    assert logged == []  # its pins (scikit-learn, cloudpickle) are all installed here
    fresh = _frame(300, seed=2)
    assert np.array_equal(legacy.score(fresh), versions.load_model(reg, new).score(fresh))
    rows = _rows(fresh)
    with running(create_app(reg, reg.state_dir, poll_seconds=3600)) as url:
        assert httpx.get(f"{url}/health").json()["champion"] == old
        got = httpx.post(f"{url}/predict", json=rows).json()["predictions"]
    expected = model.score(pd.DataFrame(rows))
    assert [p["score"] for p in got] == expected.tolist()


def test_a_version_registered_elsewhere_says_what_differs(tmp_path):
    """One line names each pin this environment does not meet, instead of MLflow's scan of
    every installed distribution (1.1 s of every load)."""
    from importlib.metadata import version

    reqs = tmp_path / "requirements.txt"
    reqs.write_text(f"mlflow=={version('mlflow')}\nlightgbm==0.1.0\nno-such-package==1.0\n"
                    "pandas>=1 ; python_version < '3'\n-r other.txt\n")
    found = versions.mismatches(reqs, "2.7.18")
    assert found == ["python " + __import__("platform").python_version()
                     + " (registered with 2.7.18)",
                     f"lightgbm {version('lightgbm')} (registered with lightgbm==0.1.0)",
                     "no-such-package missing (registered with no-such-package==1.0)"]
    assert versions.mismatches(tmp_path / "absent.txt", None) == []


def test_an_ensemble_version_registers_loads_and_serves_as_it_scored_in_memory(reg):
    """An ensemble of recipes is one version from code: each member's booster as LightGBM
    text with its own categories and weight, no pickle; loaded back through MLflow and
    served, it gives the weighted mean of its members' scores, exactly as in memory."""
    from serving.app import create_app
    from serving.models import load
    from tasks.training.model import PARALLEL_ROWS, GreenlightModel
    from tests.serving_helpers import running

    df = _frame()
    wide = fit(df, CLASSIFICATION, half_life_days=None, params={"n_estimators": 40})
    # a short window whose rows lack one colour: the members' category codes differ
    recent = df[df.colour != "blue"].tail(300)
    short = fit(recent, CLASSIFICATION, half_life_days=5, params={"n_estimators": 40})
    assert wide.categories != short.categories
    model = GreenlightModel.ensemble([wide, short], [3.0, 1.0])
    model.performance = '{"method": "cbpe"}'
    version = _register(reg, model, df, "ensemble")
    with fluent(reg.tracking_uri):
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{reg.model_name}/{version}"))
    assert not list(local.rglob("*.pkl"))
    assert {"artifacts/member-0.txt", "artifacts/member-1.txt"} <= {
        str(p.relative_to(local)) for p in local.rglob("*")}
    loaded = versions.load_model(reg, version)
    assert [w for _, w in loaded.members] == [0.75, 0.25]
    assert loaded.performance == model.performance
    fresh = _frame(300, seed=3)
    expected = 0.75 * wide.score(fresh) + 0.25 * short.score(fresh)
    assert np.allclose(model.score(fresh), expected, rtol=0, atol=1e-12)
    assert np.array_equal(loaded.score(fresh), model.score(fresh))
    assert np.array_equal(loaded.predict(None, fresh)["score"], model.score(fresh))
    many = _frame(PARALLEL_ROWS + 500, seed=4)  # members scored two at a time: the same
    assert np.array_equal(model.score(many), 0.75 * wide.score(many) + 0.25 * short.score(many))
    rows = _rows(fresh)
    assert np.array_equal(load(reg, version).model.score_rows(rows), model.score_rows(rows))
    assert np.allclose(model.score_rows(rows), model.score(pd.DataFrame(rows)), atol=1e-12)
    promote.promote(reg, version, reason="an ensemble champion")
    with running(create_app(reg, reg.state_dir, poll_seconds=3600)) as url:
        assert httpx.get(f"{url}/health").json()["champion"] == version
        got = httpx.post(f"{url}/predict", json=rows).json()["predictions"]
    assert [p["score"] for p in got] == model.score_rows(rows).tolist()
