"""Where a person checks a version, its drift reports and the dashboard: links into the
UIs when servers run, local paths and commands when they do not. The cycle's artifact and
the approval page both carry them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Protocol

from core.names import monitoring_experiment
from tasks.data.home import Home


class Store(Protocol):
    """What the links read of a registry (registry.store.Registry satisfies it)."""

    tracking_uri: str
    model_name: str

    def experiment_id(self, name: str) -> str: ...


def links(reg: Store, version: int | None, monitor_runs: dict[str, str], home: Home,
          names: Mapping[str, str] | None = None) -> dict:
    """UI links with servers (`greenlight up` sets GREENLIGHT_EVIDENTLY_URL), else local
    paths; the monitoring experiment is looked up only when there is a UI to link into.
    A drift report is named by its batch's file (`names`: batch id -> file name); the
    path beside it keeps the id."""
    uri = reg.tracking_uri.rstrip("/")

    def report(b: str) -> str:
        return f"drift report {(names or {}).get(b) or b}"

    dashboard = {"Evidently dashboard": os.environ.get("GREENLIGHT_EVIDENTLY_URL")
                 or f"uv run evidently ui --workspace {home.evidently}"}
    if not uri.startswith("http"):
        return {"MLflow store (open with `mlflow ui`)": uri,
                **{report(b): str(home.reports / b / "drift.html")
                   for b in monitor_runs}, **dashboard}
    experiment = reg.experiment_id(monitoring_experiment(reg.model_name))
    model = ({f"MLflow model version v{version}":
              f"{uri}/#/models/{reg.model_name}/versions/{version}"} if version else {})
    return {**model,
            **{report(b): f"{uri}/#/experiments/{experiment}/runs/{run}/artifacts"
               for b, run in monitor_runs.items()}, **dashboard}
