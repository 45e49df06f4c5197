"""Register a challenger in MLflow with everything needed to trust and reproduce it."""

from __future__ import annotations

import platform
import tempfile
import warnings
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from filelock import FileLock
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from registry import cards
from registry.store import Registry, absent, fluent
from registry.versions import REFERENCE_ARTIFACT, VersionInfo, find_by_tag

BATCH_SET_TAG = "greenlight.batch_set"
LOCK_TIMEOUT_S = 300  # logging a model takes seconds; a second registrant waits, then finds it


# What a version registered from code needs to load and score: its code file reads LightGBM's
# text model into a Booster. A cloudpickled model also needs what unpickles its estimator.
FROM_CODE = ["mlflow", "lightgbm", "pandas", "numpy"]
PICKLED = [*FROM_CODE, "scikit-learn", "cloudpickle"]


def _pip_requirements(packages: list[str] = FROM_CODE) -> list[str]:
    """Explicit pins: inferring them costs ~5 s per model (STACK_NOTES)."""
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in packages]


def _conda_env(packages: list[str] = FROM_CODE) -> dict[str, Any]:
    """The conda.yaml MLflow writes for `_pip_requirements()`, given whole.

    Given only the pip list, MLflow builds this environment itself and looks up pip's
    version for it; uv's venvs have no pip, so every registration warned "Failed to resolve
    installed pip version". The same file, without the look-up (and without the warning)."""
    return {"name": "mlflow-env", "channels": ["conda-forge"],
            "dependencies": [f"python={platform.python_version()}", "pip",
                             {"pip": _pip_requirements(packages)}]}


def _log_model(python_model: Any, **kwargs: Any) -> Any:
    """Log the model from code when it can give itself as files (`as_files`, see
    tasks/training/model.py): no CloudPickle, so MLflow has nothing to warn about and
    loading runs no stored code. Any other PythonModel is logged as MLflow logs objects:
    cloudpickled."""
    as_files = getattr(python_model, "as_files", None)
    if as_files is None:
        return mlflow.pyfunc.log_model(name="model", python_model=python_model,
                                       conda_env=_conda_env(PICKLED), **kwargs)
    with tempfile.TemporaryDirectory() as tmp:
        code, artifacts = as_files(Path(tmp))
        return mlflow.pyfunc.log_model(name="model", python_model=str(code),
                                       artifacts=artifacts, conda_env=_conda_env(), **kwargs)


def register(reg: Registry, *, python_model: Any, input_example: pd.DataFrame,
             output_example: pd.DataFrame, reference: pd.DataFrame, batch_set: str,
             params: dict[str, Any], metrics: dict[str, float], tags: dict[str, str],
             experiment: str, artifacts: dict[str, Path] | None = None) -> VersionInfo:
    """Log and register a model version; the same batch set never registers twice, even
    when two cycles register it at once (under the registry's file lock)."""
    with FileLock(str(reg.lock_path), timeout=LOCK_TIMEOUT_S):
        existing = find_by_tag(reg, BATCH_SET_TAG, batch_set)
        if existing is not None:
            return existing
        return _log_and_register(reg, python_model=python_model, input_example=input_example,
                                 output_example=output_example, reference=reference,
                                 batch_set=batch_set, params=params, metrics=metrics, tags=tags,
                                 experiment=experiment, artifacts=artifacts)


def _log_and_register(reg: Registry, **kwargs: Any) -> VersionInfo:
    """MLflow hints, on every registration, that integer columns cannot hold missing values.
    The inputs are doubles by design (GreenlightModel.example); the only integer column is
    the predicted class label in the output, which is never missing: the hint is noise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        return _log_and_register_quietly(reg, **kwargs)


def _log_and_register_quietly(reg: Registry, *, python_model: Any, input_example: pd.DataFrame,
                      output_example: pd.DataFrame, reference: pd.DataFrame, batch_set: str,
                      params: dict[str, Any], metrics: dict[str, float], tags: dict[str, str],
                      experiment: str, artifacts: dict[str, Path] | None) -> VersionInfo:
    signature = infer_signature(input_example, output_example)
    all_tags = {**tags, BATCH_SET_TAG: batch_set}
    labels = getattr(python_model, "labels", None)
    if labels:  # the card's limits: the classes the model can answer
        params = {**params, "classes": ", ".join(map(str, labels))}
    with fluent(reg.tracking_uri):
        with mlflow.start_run(experiment_id=reg.experiment_id(experiment),
                              run_name=f"train-{batch_set[:8]}", tags=all_tags) as run:
            mlflow.log_params(params)
            mlflow.log_metrics(metrics)
            with tempfile.TemporaryDirectory() as tmp:
                ref_path = Path(tmp) / Path(REFERENCE_ARTIFACT).name
                reference.to_parquet(ref_path, index=False)
                mlflow.log_artifact(str(ref_path), str(Path(REFERENCE_ARTIFACT).parent))
            for sub, path in (artifacts or {}).items():
                mlflow.log_artifact(str(path), artifact_path=sub)
            info = _log_model(python_model, signature=signature, input_example=input_example)
        _ensure_model(reg)
        # Tags are set at creation, so no version ever exists without its batch-set tag.
        created = reg.client.create_model_version(
            reg.model_name, source=info.model_uri, run_id=run.info.run_id,
            tags=version_tags(all_tags), model_id=info.model_id)
    version = int(created.version)
    cards.refresh(reg, version)
    return VersionInfo(version, run.info.run_id, version_tags(all_tags), metrics)


# A version's tags fill a narrow column of the MLflow UI's version list: the ones code reads
# stay whole, free text is cut (its whole text is on the training run and the card), and
# what only the card needs is left to the run.
SHORT_TAGS = ("greenlight.reasons", "greenlight.recipe_reason", "greenlight.gate_reason")
RUN_ONLY_TAGS = ("greenlight.recipe_backtest", "greenlight.gate_gain", "greenlight.gate_ci")
SHORT_TEXT = 100


def version_tags(tags: dict[str, str]) -> dict[str, str]:
    """The tags kept on the version itself (see SHORT_TAGS and RUN_ONLY_TAGS)."""
    return {k: (v[:SHORT_TEXT - 3] + "..." if k in SHORT_TAGS and len(v) > SHORT_TEXT else v)
            for k, v in tags.items() if k not in RUN_ONLY_TAGS}


def _ensure_model(reg: Registry) -> None:
    try:
        reg.client.get_registered_model(reg.model_name)
    except MlflowException as exc:
        if not absent(exc):
            raise
        reg.client.create_registered_model(
            reg.model_name, description="Managed by greenlight: @champion serves, @previous is "
                                        "kept for rollback.")


def tag_version(reg: Registry, version: int, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        reg.client.set_model_version_tag(reg.model_name, str(version), key, str(value))
