"""The state dir (`GREENLIGHT_HOME`, default `./.greenlight`): one place for everything a run keeps.

Keeping every path here means a user can copy, back up or inspect one folder and see
the whole history: landed files, the lake, quarantine, reports and the MLflow store.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# The dataset specs and Great Expectations suites shipped with greenlight (one folder each).
EXPECTATIONS_DIR = Path(__file__).resolve().parents[1] / "expectations"


@dataclass(frozen=True)
class Home:
    root: Path

    @classmethod
    def from_env(cls, root: str | Path | None = None) -> Home:
        """Resolve the state dir: explicit argument, else `GREENLIGHT_HOME`, else ./.greenlight."""
        value = root or os.environ.get("GREENLIGHT_HOME") or ".greenlight"
        return cls(Path(value).expanduser().resolve())

    @property
    def landing(self) -> Path:
        return self.root / "landing"

    @property
    def archive(self) -> Path:
        """Accepted raw files, byte for byte, once their batch is in the lake."""
        return self.root / "archive"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def labels(self) -> Path:
        """The late-labels feed: files of (key, target) that land after their batch."""
        return self.root / "labels"

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.jsonl"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def evidently(self) -> Path:
        """The Evidently workspace the Evidently UI (`greenlight up`) serves."""
        return self.root / "evidently"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def artifacts(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def prefect(self) -> Path:
        return self.root / "prefect"

    @property
    def tracking_uri(self) -> str:
        """`MLFLOW_TRACKING_URI` when set (a server), else SQLite inside the state dir."""
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.mlflow_db}"

    def ensure(self) -> Home:
        for path in (self.landing, self.archive, self.quarantine, self.lake, self.reports):
            path.mkdir(parents=True, exist_ok=True)
        return self
