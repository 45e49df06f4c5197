"""Read registry state: which version holds an alias, its tags, metrics, model and reference."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow.exceptions import MlflowException

from registry.store import Registry, absent, fluent

if TYPE_CHECKING:  # pandas loads only where a reference is read: `status` never pays for it
    import pandas as pd

log = logging.getLogger("greenlight.registry")
REFERENCE_ARTIFACT = "reference/reference.parquet"
TRAINED_UNTIL_TAG = "greenlight.trained_until"


@dataclass(frozen=True)
class VersionInfo:
    version: int
    run_id: str
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


def _info(reg: Registry, mv: Any) -> VersionInfo:
    metrics = reg.client.get_run(mv.run_id).data.metrics if mv.run_id else {}
    return VersionInfo(int(mv.version), mv.run_id, dict(mv.tags or {}), dict(metrics))


def by_alias(reg: Registry, alias: str) -> VersionInfo | None:
    """The version an alias points to, or None when the model or alias does not exist yet."""
    try:
        return _info(reg, reg.client.get_model_version_by_alias(reg.model_name, alias))
    except MlflowException as exc:
        if not absent(exc):
            raise
        return None


def by_version(reg: Registry, version: int) -> VersionInfo:
    return _info(reg, reg.client.get_model_version(reg.model_name, str(version)))


def aliases(reg: Registry) -> dict[str, int]:
    """All aliases (read from the model: `search_model_versions` leaves them out)."""
    try:
        model = reg.client.get_registered_model(reg.model_name)
    except MlflowException as exc:
        if not absent(exc):
            raise
        return {}
    return {alias: int(version) for alias, version in (model.aliases or {}).items()}


def _listed(mv: Any) -> VersionInfo:
    """A version as a search lists it, without metrics (they would cost a query each)."""
    return VersionInfo(int(mv.version), mv.run_id, dict(mv.tags or {}))


def all_versions(reg: Registry) -> list[VersionInfo]:
    try:
        found = reg.client.search_model_versions(f"name='{reg.model_name}'")
    except MlflowException as exc:
        if not absent(exc):
            raise
        return []
    return sorted(map(_listed, found), key=lambda v: v.version)


def find_by_tag(reg: Registry, key: str, value: str) -> VersionInfo | None:
    """The earliest version carrying a tag value; used to make registration idempotent.

    The store filters, so a model with hundreds of versions costs one small query, not a
    read of every version. MLflow's filter has no escape for quotes: a value holding both
    quote characters (or a key holding a backtick) is found by reading every version."""
    quote = next((q for q in "'\"" if q not in value), None)
    if quote is None or "`" in key:
        return next((v for v in all_versions(reg) if v.tags.get(key) == value), None)
    try:
        found = reg.client.search_model_versions(
            f"name = '{reg.model_name}' and tags.`{key}` = {quote}{value}{quote}",
            max_results=1, order_by=["version_number ASC"])
    except MlflowException as exc:
        if not absent(exc):
            raise
        return None
    return next(map(_listed, found), None)


def load_pyfunc(reg: Registry, version: int) -> Any:
    """The pyfunc of a registered version (model plus signature), from the configured
    registered model only: the URI is built here, never taken from a caller.

    MLflow's own check of the model's requirements against this environment maps every
    installed distribution to its modules first (~1.1 s of serve's start-up, and of every
    cycle's champion load); `mismatches` checks the same pins directly and says so once."""
    import mlflow.artifacts
    import mlflow.pyfunc

    with fluent(reg.tracking_uri):
        local = Path(mlflow.artifacts.download_artifacts(
            f"models:/{reg.model_name}/{int(version)}"))
        pyfunc = mlflow.pyfunc.load_model(str(local), suppress_warnings=True)
    registered = pyfunc.metadata.flavors.get("python_function", {}).get("python_version")
    problems = mismatches(local / "requirements.txt", registered)
    if problems:
        log.warning("v%s was registered in another environment (%s): its scores may differ",
                    version, "; ".join(problems))
    return pyfunc


def mismatches(requirements: Path, python_version: str | None) -> list[str]:
    """What this environment lacks of a model's pins, e.g. "lightgbm 4.6.0 (registered
    with lightgbm==4.7.0)", and a Python of another minor version."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from packaging.requirements import InvalidRequirement, Requirement

    found = []
    if python_version and python_version.split(".")[:2] != \
            platform.python_version().split(".")[:2]:
        found.append(f"python {platform.python_version()} (registered with {python_version})")
    lines = requirements.read_text().splitlines() if requirements.is_file() else []
    for line in (x.strip() for x in lines):
        try:
            req = Requirement(line)
        except InvalidRequirement:  # a comment, a blank, a path or URL: nothing to compare
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            have = version(req.name)
        except PackageNotFoundError:
            found.append(f"{req.name} missing (registered with {line})")
            continue
        if not req.specifier.contains(have, prereleases=True):
            found.append(f"{req.name} {have} (registered with {line})")
    return found


def load_model(reg: Registry, version: int) -> Any:
    """The python model behind a registered version, from the configured registry only."""
    return load_pyfunc(reg, version).unwrap_python_model()


def load_reference(reg: Registry, info: VersionInfo) -> pd.DataFrame:
    """The drift reference logged with a version: the data it takes as normal."""
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        path = reg.client.download_artifacts(info.run_id, REFERENCE_ARTIFACT, tmp)
        return pd.read_parquet(Path(path))


def trained_until(reg: Registry, info: VersionInfo) -> pd.Timestamp | None:
    """The newest row the version learned from: its tag, or for versions registered before
    the tag existed, the end of its training window in the run's params."""
    import pandas as pd

    value = info.tags.get(TRAINED_UNTIL_TAG)
    if value is None and info.run_id:
        value = reg.client.get_run(info.run_id).data.params.get("train_end")
    return pd.Timestamp(value) if value else None
