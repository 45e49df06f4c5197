"""`greenlight demo`: replay a stream through real cycles, then show what happened and where."""

from __future__ import annotations

import gc
import os
import shutil
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from cli.settings import SETTINGS_FILE
from core.console import line
from core.servers import real_api_url
from tasks.data import replay as sources
from tasks.data.home import Home
from tasks.data.spec import load_spec

# Batches landed before the first cycle, to bootstrap the first champion (as in PROVENANCE).
WARMUP = {"synthetic": 1, "elec2": 6, "bike_sharing": 4, "synthetic_multiclass": 1,
          "bike_weathersit": 4}
# What should happen at each drift of the built-in multiclass stream
# (tasks/data/replay_multiclass.py), printed under the demo's table to read it against.
MULTICLASS_SCRIPT = (
    ("W07 (batch 5)", "covariate shift: region east appears, half the tickets, mostly about "
                      "shipping", "data drift; the champion decays -> retrain -> promote"),
    ("W10 (batch 8)", "1% of tickets for a team that does not exist ('refund')",
     "quarantined by the suite's class set, one line; the champion stays"),
    ("W12 (batch 10)", "prior shift: billing tickets double (8% -> 20%)",
     "label drift -> retrain -> promote (the champion under-calls billing)"),
    ("W17 (batch 15)", "concept change: billing now comes from small orders, not big ones; "
                       "class shares unchanged", "decay on the labels -> retrain -> promote"),
)


def batches_for(dataset: str, data: Path | None, freq: str, seed: int,
                rows: int | None = None) -> list[sources.Batch]:
    """The built-in synthetic stream, or a real dataset cut into time-ordered batches: by
    calendar period (`freq`, any pandas unit with a multiple) or by count (`rows`)."""
    if data is None and dataset == "synthetic":
        return sources.synthetic_stream(seed=seed)
    if data is None and dataset == "synthetic_multiclass":
        from tasks.data.replay_multiclass import multiclass_stream

        return multiclass_stream(seed=seed)
    path = data or sources.default_data_path(dataset)
    if path is None:
        raise ValueError(f"{dataset}: no data file given and none found in ../shared/data "
                         f"(pass --data PATH)")
    frame, spec = sources.load_dataset(dataset, Path(path)), load_spec(dataset)
    if rows is not None:
        return sources.cut_rows(frame, spec, rows)
    return sources.cut_batches(frame, spec, freq)


def _fresh_home(root: Path, console: Console) -> None:
    """The demo starts from nothing; an earlier state dir is kept aside, never deleted.

    The settings file is configuration, not state: the fresh state dir keeps a copy, so the
    `greenlight run`s after the demo read the same settings the demo ran with."""
    if any((root / name).exists() for name in ("manifest.jsonl", "mlflow.db", "landing")):
        aside = root.with_name(f"{root.name}-{datetime.now():%Y%m%d-%H%M%S}")
        shutil.move(str(root), aside)
        (root / "prefect").mkdir(parents=True)
        if (aside / SETTINGS_FILE).is_file():
            shutil.copy2(aside / SETTINGS_FILE, root / SETTINGS_FILE)
        line(console, (f"kept the previous state dir as {aside}", "dim"))


def run_demo(root: Path, *, dataset: str, data: Path | None, freq: str, warmup: int | None,
             limit: int | None, seed: int, console: Console,
             parameters: Mapping[str, BaseModel] | None = None) -> None:
    """`parameters`: the cycle's typed settings (`thresholds`, `training`, `scale`), as
    `cli.settings.Settings.models()` builds them from `--set` and greenlight.toml."""
    load_spec(dataset)  # fail fast, before moving anything, on an unknown dataset
    batches = batches_for(dataset, data, freq, seed)[:limit]
    _fresh_home(root, console)
    from cli.embedded import start_early

    server_ready = start_early()  # Prefect's temporary server starts while the cycle imports
    from flows.cycle import cycle, registry_for

    gc.freeze()  # the imported stack is never garbage: full collections need not walk it
    from cli.status import status
    from cli.views import batch_table, print_quarantine

    home = Home.from_env(root).ensure()
    first = warmup if warmup is not None else WARMUP.get(dataset, 1)
    groups = [batches[:first]] + [[b] for b in batches[first:]]
    started = time.perf_counter()
    line(console, ("greenlight demo", "bold"), f": {len(batches)} batches of {dataset} through "
         f"{len(groups)} cycles; state in {home.root}")
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as progress:
        bar = progress.add_task("starting Prefect", total=len(groups))
        server_ready()
        for group in groups:
            for batch in group:
                sources.write_batch(batch, home.landing)
            progress.update(bar, description=f"cycle on {group[-1].label}")
            summary = cycle(dataset=dataset, home=str(home.root), **(parameters or {}))
            progress.update(bar, advance=1, description=f"{group[-1].label}: "
                                                         f"{summary.get('decision', 'no action')}")
    elapsed = time.perf_counter() - started
    state = status(home, registry_for(home, load_spec(dataset)))
    console.print(batch_table(state, title=f"greenlight demo: {dataset} "
                                           f"({len(batches)} batches, {elapsed:.0f} s)",
                              width=console.width))
    print_quarantine(state, console)
    if dataset == "synthetic_multiclass":
        line(console, ("What should happen (tasks/data/replay_multiclass.py)", "bold"))
        for when, what, expected in MULTICLASS_SCRIPT:
            line(console, f"  {when}: {what}: {expected}")
    champion = state["champion"]
    line(console, f"champion: v{champion}, previous: v{state['previous']}, "
         f"{len(state['versions'])} versions, {len(state['promotions'])} promotions\n")
    for said in where_to_look(state, home, dataset):
        line(console, *said)


def where_to_look(state: dict[str, Any], home: Home, dataset: str
                  ) -> list[tuple[str | tuple[str, str], ...]]:
    """The closing lines: how to open each UI on this state, and the status command that
    reads it (with `--home`, so it reads this state dir and not ./.greenlight). With a
    tracking server (or a real Prefect server), its own UI, not a local command over it."""
    tracking = str(state["tracking_uri"])
    mlflow = (f"{tracking}  (Models -> {state['model']})" if tracking.startswith("http") else
              f"uv run mlflow ui --backend-store-uri {tracking} --port 5000   then "
              f"http://127.0.0.1:5000 (Models -> {state['model']})")
    api = real_api_url(os.environ.get("PREFECT_API_URL"))
    prefect = (f"{api.removesuffix('/api')}  (flow runs, each with a greenlight-cycle artifact)"
               if api else
               f"PREFECT_HOME={home.prefect} uv run prefect server start   then "
               "http://127.0.0.1:4200 (flow runs, each with a greenlight-cycle artifact)")
    return [(("Look at what happened", "bold"),),
            (f"  MLflow UI:   {mlflow}",),
            (f"  Prefect UI:  {prefect}",),
            (f"  drift reports (Evidently HTML): {home.reports}/<batch id>/drift.html",),
            (f"  Evidently UI: uv run evidently ui --workspace {home.evidently} --port 8000"
             "   then http://127.0.0.1:8000 (dashboard over batches)",),
            (f"  quarantine:  {home.quarantine}/<batch id>/report.md",),
            (f"  status:      uv run greenlight status --dataset {dataset} "
             f"--home {home.root} [--json]",)]
