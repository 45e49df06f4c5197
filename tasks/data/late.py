"""Late labels: batch t's labels may land with batch t+k. Reading a stored batch with the
labels known so far, measuring the champion's decay on newly labelled rows, and recording
it on the batch in the manifest."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from tasks.data import labels, lake, manifest
from tasks.data.home import Home
from tasks.data.spec import DatasetSpec
from tasks.monitoring.monitor import MonitorResult


def labelled(home: Home, spec: DatasetSpec, batch_id: str) -> pd.DataFrame:
    """A batch from the lake with every label that has landed for it."""
    return labels.attach(lake.read_batches(home.lake, [batch_id]), home, spec)


def late_results(home: Home, spec: DatasetSpec, champion: Callable[[], tuple[Any, float]]
                 ) -> list[tuple[dict[str, Any], MonitorResult]]:
    """Monitored batches whose labels landed since, with the champion's decay on them.

    `champion` gives the model and the metric decay is measured from; it is called only
    when a batch waits and a label feed exists (loading a model costs seconds)."""
    waiting = labels.awaiting(manifest.load(home.manifest))
    if not waiting or not labels.available(home):
        return []
    model, registered = champion()
    found = []
    for batch in waiting:
        result = labels.late_decay(batch, labelled(home, spec, batch["id"]), model, spec,
                                   registered)
        if result is not None:
            found.append((batch, result))
    return found


def record_late(home: Home, batch: dict[str, Any], result: MonitorResult,
                registered: float) -> None:
    """The decay on the batch's manifest record, after its run is logged (a crash between
    the two logs it again; never records what was not logged)."""
    manifest.append(home.manifest, batch["id"], champion_metric=result.champion_metric,
                    decay=result.decay, labelled_rows=result.labelled_rows,
                    registered_metric=registered, labels_at=manifest.now_iso())
