"""The history guard: a challenger must not be worse than the champion on what it was
already judged on.

The gate judges a challenger on the newest rows only. When those rows' labels are wrong
(flipped, shifted by a row, another dataset's), a challenger that learned them wins the
gate by hundreds of percent: issue 31 saw `gate clear +683.8%` for a model with 8.7%
accuracy. The batches before the newest ones are the evidence the champion already stood
on; a challenger that learned a real market change is still about as good there (it
trained on them too, and on more), while one that learned a broken label feed is far
worse. So after a passing gate the roles are swapped and the gate runs again on those
rows, with its own paired bootstrap and margin: a champion proven better there by more
than the margin refuses the challenger, and the gate's verdict becomes `fail` with the
reason in words, recorded where every gate verdict is.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

import pandas as pd

from tasks.data.spec import DatasetSpec
from tasks.gate.gate import GateResult, Scorer, gate


def judged_rows(history: pd.DataFrame, spec: DatasetSpec, batch_column: str,
                new_batches: Collection[str] | None = None,
                after: pd.Timestamp | None = None) -> pd.DataFrame:
    """The labelled rows newer than `after` (the champion's newest training row) of the
    newest batches before `new_batches` (default: the batch of the newest row), whole
    batches, newest first, until they hold at least as many rows as the new batches: the
    rows the champion was judged on without having learned them, as many as the new
    evidence.

    Rows the champion learned from would judge nothing: on its own training rows a
    LightGBM model scores far above its real accuracy (0.94 against 0.77 on the synthetic
    stream), so every challenger would look worse there. The challenger did learn from
    the judged rows, which only makes the guard slower to refuse. Older batches weigh less
    under drift, and scoring an ensemble on the whole history costs seconds."""
    if batch_column not in history.columns or not len(history):
        return history.iloc[:0]
    rows = history[history[spec.target].notna()]
    if after is not None:
        rows = rows[rows[spec.time_column] > after]
    if new_batches is None:
        newest = rows.loc[rows[spec.time_column].idxmax(), batch_column] if len(rows) else None
        new_batches = [newest]
    new = set(new_batches)
    fresh = rows[batch_column].isin(new)
    older = rows[~fresh]
    if not len(older):
        return older
    starts = older.groupby(batch_column, sort=False)[spec.time_column].min().sort_values()
    wanted, kept = int(fresh.sum()), []
    for batch in reversed(starts.index):
        kept.append(batch)
        if int(older[batch_column].isin(kept).sum()) >= wanted:
            break
    return older[older[batch_column].isin(kept)]


def guard(result: GateResult, challenger: Scorer, champion: Scorer | None,
          rows: pd.DataFrame, spec: DatasetSpec, *, min_delta: float,
          min_rows: int) -> GateResult:
    """`result` unchanged unless it passed against a champion and the champion is proven
    better on `rows` (the gate with the roles swapped: verdict clear, the lower bound of the
    champion's gain above the tolerance a negative min_delta gives a challenger, else above
    zero: the challenger learned from these rows and the champion did not, so a champion
    proven better at all is a challenger that the newest labels made worse). Then a `fail`
    verdict whose reason says so; the figures of the gate on the
    new rows stay. Fewer than `min_rows` judged rows (or a class short) cannot refuse."""
    if not result.passed or champion is None or result.verdict == "bootstrap" or not len(rows):
        return result
    back = gate(champion, challenger, rows, spec, min_delta=max(-min_delta, 0.0),
                min_rows=min_rows)
    if back.verdict != "clear":
        return result
    why = (f"fail: history: the champion is proven better on the {back.n_rows:,} labelled "
           f"rows it was judged on since it was trained ({back.metric} "
           f"{back.challenger:.4f} against the challenger's {back.champion:.4f}, its gain "
           f"{back.gain:+.2%}, 95% CI "
           f"{back.ci_low:+.2%}..{back.ci_high:+.2%}): the newest labels taught the "
           f"challenger something the past refutes; the gate on the newest rows said "
           f"{result.reason}")
    return replace(result, verdict="fail", passed=False, reason=why)
