"""Paired (block) bootstrap of the relative gain of one model over another, in numpy.

Why numpy and not a metric call per resample: 1000 sklearn calls take seconds, while
per-row losses gathered through one index matrix take milliseconds, and the gate runs in
every cycle. So only metrics that are a function of a mean of per-row losses are
supported: accuracy, MAE and RMSE. ROC AUC is a rank statistic and raises.

Why blocks: neighbouring rows of a time series share weather, prices and load, so their
losses move together. Resampling single rows then treats n correlated rows as n
independent ones and makes the interval too narrow. Circular moving blocks keep that
dependence inside each block (and, unlike plain moving blocks, give every row the same
chance of being drawn).

Why super-blocks on big windows: the row-index matrix holds n_resamples x n entries, 2.4 GB
at 300k rows. Above MAX_ROWS rows the window is cut into at most SUPER_BLOCKS contiguous
blocks (never shorter than the chosen block length) and whole blocks are resampled: the
non-overlapping block bootstrap (Carlstein 1986), which keeps the dependence inside each
block too, at a cost of one pass over the rows plus n_resamples x SUPER_BLOCKS.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from tasks.data.spec import DatasetSpec
from tasks.training.multiclass import (
    confusion_cells,
    confusion_draws,
    predicted,
    row_log_loss,
)

SUPPORTED = ("accuracy", "mae", "rmse", "log_loss", "macro_f1", "balanced_accuracy")
CONFUSION = ("macro_f1", "balanced_accuracy")  # multiclass: from resampled confusion counts
BINARY = ("accuracy",)  # metrics whose per-row losses are 0 or 1 (`_binary_draws`)
MAX_ROWS = 50_000
SUPER_BLOCKS = 10_000


def row_losses(metric: str, y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """The per-row quantity whose mean is the metric (for RMSE, whose mean's root is).
    Multiclass (one probability column per class): right or wrong, and log loss; macro-F1
    and balanced accuracy are no mean of rows (their draws resample confusion counts), so
    for them this is right or wrong, which only sets the block length."""
    if np.ndim(scores) == 2:
        if metric == "log_loss":
            return row_log_loss(y, scores)
        if metric in ("accuracy", *CONFUSION):
            return (predicted(scores) == np.asarray(y).astype(int)).astype(float)
    if metric == "accuracy":
        return ((scores >= 0.5) == (y == 1)).astype(float)
    if metric == "mae":
        return np.abs(y - scores)
    if metric == "rmse":
        return (y - scores) ** 2
    raise ValueError(f"paired bootstrap supports {', '.join(SUPPORTED)}, not {metric!r}: "
                     "ROC AUC is not a mean of per-row losses; gate on accuracy instead")


def _finish(metric: str, means: np.ndarray) -> np.ndarray:
    return np.sqrt(means) if metric == "rmse" else means


def auto_block_rows(diff: np.ndarray) -> int:
    """Block length from the lag-1 autocorrelation rho of the per-row loss difference.

    No significant autocorrelation (rho <= 2/sqrt(n)) gives 1: the i.i.d. bootstrap. Else
    the moving-block rule for AR(1)-like dependence (Hall, Horowitz & Jing 1995; Politis &
    White 2004): b = (3n/2)^(1/3) * (2 rho / (1 - rho^2))^(2/3), at most n/10 so that a
    resample still mixes at least ten stretches of the window."""
    n = len(diff)
    d = np.asarray(diff, dtype=float) - np.mean(diff) if n else np.array([])
    denom = float(np.dot(d, d))
    if n < 20 or denom == 0:
        return 1
    rho = float(np.dot(d[:-1], d[1:]) / denom)
    if rho <= 2 / np.sqrt(n):
        return 1
    rho = min(rho, 0.99)
    b = (1.5 * n) ** (1 / 3) * (2 * rho / (1 - rho**2)) ** (2 / 3)
    return int(np.clip(round(b), 1, max(1, n // 10)))


def resample_index(n: int, block_rows: int, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples, n) row indices: i.i.d. rows, or circular blocks of `block_rows` in time
    order. Seeded, so the same window always gets the same verdict."""
    rng = np.random.default_rng(seed)
    if block_rows <= 1:
        return rng.integers(0, n, size=(n_resamples, n))
    blocks = -(-n // block_rows)
    starts = rng.integers(0, n, size=(n_resamples, blocks))
    idx = (starts[:, :, None] + np.arange(block_rows)) % n
    return idx.reshape(n_resamples, blocks * block_rows)[:, :n]


def _gains(new: np.ndarray, old: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """relative_gain elementwise, in numpy: the same operations on the same doubles, so each
    draw's gain is bit for bit the one the point estimate's function gives (a Python call
    per draw cost ~5 us x 1000 resamples x every slice)."""
    new, old = np.asarray(new, dtype=float), np.asarray(old, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = (new - old) / np.abs(old)
    gain = gain if higher_is_better else -gain
    missing = np.isnan(new) | np.isnan(old)
    special = np.where(missing, np.nan, np.sign(new - old))  # relative_gain's edge cases
    return np.where(missing | (old == 0), special, gain)


def _groups(groups: pd.Series | None, n: int) -> tuple[np.ndarray, list]:
    """Integer group codes per row (missing = its own group) and the group values."""
    if groups is None:
        return np.zeros(n, dtype=int), [None]
    codes, uniques = pd.factorize(groups, sort=True)
    values = list(uniques) + (["<missing>"] if (codes < 0).any() else [])
    return np.where(codes < 0, len(uniques), codes), values


def _summarize(values: list, rows: np.ndarray, champion: tuple, challenger: tuple,
               spec: DatasetSpec, level: float) -> dict:
    (cp, cp_draws), (ch, ch_draws) = champion, challenger
    hib = spec.higher_is_better
    gain_draws = _gains(ch_draws, cp_draws, hib)
    tail = (1 - level) / 2 * 100
    with np.errstate(invalid="ignore"):
        low, high = np.nanpercentile(gain_draws, [tail, 100 - tail], axis=0)
    return {"values": values, "rows": rows, "champion": cp, "challenger": ch,
            "gain": _gains(ch, cp, hib), "ci_low": low, "ci_high": high}


def paired_draws(y: np.ndarray, champion: np.ndarray, challenger: np.ndarray,
                 spec: DatasetSpec, idx: np.ndarray, level: float = 0.95,
                 groups: pd.Series | None = None) -> dict:
    """Point metrics, point gain and percentile interval of the gain, per group.

    One group (all rows) when `groups` is None; else one per value, so slices reuse the
    same resamples as the overall verdict."""
    metric = spec.primary_metric
    codes, values = _groups(groups, len(y))
    k, b = len(values), idx.shape[0]
    rows = np.bincount(codes, minlength=k)
    if metric in CONFUSION:
        counts_of = lambda scores: _per_draw(confusion_cells(y, scores, codes, k), idx, k)  # noqa: E731
        return _summarize(values, rows, *confusion_draws(counts_of, metric, y, champion,
                                                         challenger, codes, k), spec, level)
    if metric in BINARY:
        return _binary_draws(y, champion, challenger, spec, idx, level, codes, values, rows)
    flat = (codes[idx] + k * np.arange(b)[:, None]).ravel()
    counts = np.bincount(flat, minlength=b * k).reshape(b, k)

    def draws(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = row_losses(metric, y, scores)
        sums = np.bincount(flat, weights=q[idx].ravel(), minlength=b * k).reshape(b, k)
        with np.errstate(invalid="ignore", divide="ignore"):
            point = np.bincount(codes, weights=q, minlength=k) / rows
            return _finish(metric, point), _finish(metric, sums / counts)

    return _summarize(values, rows, draws(champion), draws(challenger), spec, level)


def _binary_draws(y: np.ndarray, champion: np.ndarray, challenger: np.ndarray,
                  spec: DatasetSpec, idx: np.ndarray, level: float, codes: np.ndarray,
                  values: list, rows: np.ndarray) -> dict:
    """`paired_draws` for 0/1 losses (accuracy), the same doubles from a quarter of the work.

    A row is one of four cells per group (each model right or wrong), so one count of the
    cells each resample drew gives both models' sums and the rows of every group: whole
    numbers, which no order of adding changes. The binned path gathers and bins
    n_resamples x n losses once per model, on top of the row counts."""
    metric, b, k = spec.primary_metric, idx.shape[0], len(values)
    q_cp, q_ch = row_losses(metric, y, champion), row_losses(metric, y, challenger)
    cell = 4 * codes + 2 * q_cp.astype(np.int64) + q_ch.astype(np.int64)
    tally = np.bincount((cell[idx] + 4 * k * np.arange(b)[:, None]).ravel(),
                        minlength=4 * k * b).reshape(b, k, 2, 2)
    counts = tally.sum(axis=(2, 3))

    def draws(q: np.ndarray, sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore", divide="ignore"):
            point = np.bincount(codes, weights=q, minlength=k) / rows
            return _finish(metric, point), _finish(metric, sums / counts)

    return _summarize(values, rows, draws(q_cp, tally[:, :, 1, :].sum(axis=2)),
                      draws(q_ch, tally[:, :, :, 1].sum(axis=2)), spec, level)


def _per_draw(cells: tuple[np.ndarray, int], idx: np.ndarray, k: int) -> np.ndarray:
    """(draws, k groups, cells per group) counts of the rows each draw of `idx` picked."""
    cell, size = cells
    b = idx.shape[0]
    flat = (cell[idx] + k * size * np.arange(b)[:, None]).ravel()
    return np.bincount(flat, minlength=b * k * size).reshape(b, k, size)


def super_block_rows(n: int, block_rows: int) -> int:
    """Rows per super-block of an n-row window (module docstring)."""
    return max(int(block_rows), -(-n // SUPER_BLOCKS))


def super_block_draws(y: np.ndarray, champion: np.ndarray, challenger: np.ndarray,
                      spec: DatasetSpec, block_rows: int, n_resamples: int, seed: int,
                      level: float = 0.95, groups: pd.Series | None = None) -> dict:
    """`paired_draws` for big windows: whole super-blocks resampled, each draw's metric the
    ratio of its loss sum to its row count per group. Seeded, so slices (another call with
    `groups`) reuse the overall verdict's resamples."""
    metric, n = spec.primary_metric, len(y)
    codes, values = _groups(groups, n)
    k, size = len(values), super_block_rows(n, block_rows)
    cell = (np.arange(n) // size) * k + codes
    m = -(-n // size)
    picks = np.random.default_rng(seed).integers(0, m, size=(n_resamples, m))
    times = np.bincount((picks + m * np.arange(n_resamples)[:, None]).ravel(),
                        minlength=n_resamples * m).reshape(n_resamples, m).astype(float)
    counts = times @ np.bincount(cell, minlength=m * k).reshape(m, k)
    rows = np.bincount(codes, minlength=k)
    if metric in CONFUSION:  # confusion counts per super-block, summed by each draw's picks
        def counts_of(scores: np.ndarray) -> np.ndarray:
            cells, size = confusion_cells(y, scores, codes, k)
            block = np.bincount((np.arange(n) // super_block_rows(n, block_rows)) * k * size
                                + cells, minlength=m * k * size).reshape(m, k * size)
            return (times @ block).reshape(n_resamples, k, -1)
        return _summarize(values, rows, *confusion_draws(counts_of, metric, y, champion,
                                                         challenger, codes, k), spec, level)

    def draws(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q = row_losses(metric, y, scores)
        sums = times @ np.bincount(cell, weights=q, minlength=m * k).reshape(m, k)
        with np.errstate(invalid="ignore", divide="ignore"):
            point = np.bincount(codes, weights=q, minlength=k) / rows
            return _finish(metric, point), _finish(metric, sums / counts)

    return _summarize(values, rows, draws(champion), draws(challenger), spec, level)


def draws_for(y: np.ndarray, champion: np.ndarray, challenger: np.ndarray, spec: DatasetSpec,
              block_rows: int, n_resamples: int, seed: int, level: float = 0.95,
              groups: pd.Series | None = None) -> dict:
    """Row (block) resamples up to MAX_ROWS rows, super-blocks above; same seed, same draws."""
    if len(y) > MAX_ROWS:
        return super_block_draws(y, champion, challenger, spec, block_rows, n_resamples, seed,
                                 level, groups)
    idx = resample_index(len(y), block_rows, n_resamples, seed)
    return paired_draws(y, champion, challenger, spec, idx, level, groups)


@dataclass(frozen=True)
class Bootstrap:
    champion: float
    challenger: float
    gain: float
    ci_low: float
    ci_high: float
    n_rows: int
    n_resamples: int
    block_rows: int

    def to_dict(self) -> dict:
        return asdict(self)


def paired_bootstrap(y: np.ndarray, champion: np.ndarray, challenger: np.ndarray,
                     spec: DatasetSpec, *, n_resamples: int = 1000, seed: int = 0,
                     block_rows: int | None = None, level: float = 0.95) -> Bootstrap:
    """The relative gain of `challenger` over `champion` scores (same rows, time order) in
    the spec's primary metric, with its bootstrap interval. `block_rows` None chooses the
    block length from the data (auto_block_rows); 1 forces the i.i.d. bootstrap."""
    y, champion, challenger = (np.asarray(a, dtype=float) for a in (y, champion, challenger))
    metric = spec.primary_metric
    if block_rows is None:
        diff = row_losses(metric, y, challenger) - row_losses(metric, y, champion)
        block_rows = auto_block_rows(diff)
    block_rows = max(1, int(block_rows))
    out = draws_for(y, champion, challenger, spec, block_rows, n_resamples, seed, level)
    if len(y) > MAX_ROWS:
        block_rows = super_block_rows(len(y), block_rows)
    return Bootstrap(float(out["champion"][0]), float(out["challenger"][0]),
                     float(out["gain"][0]), float(out["ci_low"][0]), float(out["ci_high"][0]),
                     len(y), n_resamples, block_rows)
