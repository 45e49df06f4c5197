"""The recipe backtest's folds and fits: which windows each candidate is scored on, and
the fits on them (tasks/training/recipe.py chooses from the scores).

Each fold is a replica of the gate: as many rows as the gate window, scored by a model
fitted on every row before it (within the candidate's window); the newest `folds` windows
lie back to back, the newest ending where the gate window begins. The next batch moves
every fold by a batch, so no fold's rows recur and each retrain fits every candidate on
every fold again. Folds tiled in each batch instead (so that a later cycle could keep
their scores) were measured and not kept: they save nothing unless consecutive cycles
retrain, and with light refits they fell behind the best fixed strategy on Bike Sharing by
month (docs/benchmarks.md, what a retrain costs).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from core.threads import map_threads
from tasks.data.spec import DatasetSpec
from tasks.training.evaluate import primary_metric, truth_of
from tasks.training.train import EncodedRows, Fit, encode_rows, range_scores

if TYPE_CHECKING:
    from tasks.training.recipe import Recipe

BACKTEST_PARAMS = {"n_estimators": 50, "learning_rate": 0.2, "n_jobs": 1}
# Above this many rows the backtest runs on a seeded uniform sample of them (`_thin`): it
# ranks recipes, and 30 fits on millions of rows cost minutes (benchmarks/growth.py).
MAX_BACKTEST_ROWS = 100_000
MIN_TRAIN_ROWS = 50  # below this a candidate's fold is not scored (NaN)
# Threads fitting the backtest's row sets at once (each fit on one thread): two, for the
# 2-core machines greenlight runs on; fewer where fewer cores are ours.
BACKTEST_WORKERS = 2
FITS_PER_DATASET = 3


def _fold_bounds(rows: int, folds: int, fold_rows: int) -> list[tuple[int, int]]:
    """Row ranges [start, end) of the newest `folds` windows, oldest first."""
    return [(rows - (folds - i) * fold_rows, rows - (folds - i - 1) * fold_rows)
            for i in range(folds)]


def _thin(data: pd.DataFrame, bounds: list[tuple[int, int]], max_rows: int, seed: int
          ) -> tuple[pd.DataFrame, list[tuple[int, int]]]:
    """A seeded uniform sample of at most `max_rows` rows, in time order, with the fold
    bounds mapped onto it; smaller data unchanged.

    One sampling rate for every row, so each candidate keeps the same share of the rows
    its window or half-life gives it, and every fold the same share of its window: the
    recipes are compared as on the whole data, at a fixed cost however big it grows."""
    if len(data) <= max_rows:
        return data, bounds
    keep = np.sort(np.random.default_rng(seed).choice(len(data), max_rows, replace=False))
    mapped = [(int(np.searchsorted(keep, a)), int(np.searchsorted(keep, b))) for a, b in bounds]
    return data.iloc[keep].reset_index(drop=True), mapped


Group = tuple[int, int]  # (fold, rows before it that a candidate trains on)
Rows = tuple[np.ndarray, np.ndarray]  # positions a candidate trains on, and its fold's


def _backtest(data: pd.DataFrame, spec: DatasetSpec, candidates: tuple[Recipe, ...],
              bounds: list[tuple[int, int]], settings: dict) -> dict[Recipe, list[float]]:
    """Each candidate's primary metric per fold: fitted on the rows before the fold (within
    its window), scored on the fold. NaN where fewer than MIN_TRAIN_ROWS rows are left.
    `data` is in time order, indexed 0..n-1 (as `choose_recipe` passes it).

    The rows are encoded and labelled once (`encode_rows`); candidates that train on the same
    rows share one binned Dataset, and the same rows with the same half-life are one fit: a
    window longer than the history trains exactly the model without one. The fits of
    different row sets run on BACKTEST_WORKERS threads (LightGBM releases the GIL; each fit
    keeps its one OpenMP thread, so each model is the one a serial backtest fits)."""
    groups, where = _groups(data, spec, candidates, bounds)
    done = _fit_groups(encode_rows(data, spec), groups, spec, settings)
    return {r: [math.nan if where[r, i] is None else done[where[r, i]][r.fit()]
                for i in range(len(bounds))] for r in candidates}


def _fold_rows(times: pd.Series, start: int, end: int, window_days: float | None) -> Rows:
    """`split_gate_window(data.iloc[:end], spec, end - start, window_days)` as positions in
    time-ordered `data`: no frame is cut per fold and window, only its times compared."""
    cut = end - min(end - start, end // 2)
    train = np.arange(cut)
    if window_days is not None and cut:
        before = times.iloc[:cut]
        train = train[(before > before.max() - pd.Timedelta(days=window_days)).to_numpy()]
    return train, np.arange(cut, end)


def _groups(data: pd.DataFrame, spec: DatasetSpec, candidates: tuple[Recipe, ...],
            bounds: list[tuple[int, int]]
            ) -> tuple[dict[Group, tuple[Rows, list[Fit]]],
                       dict[tuple[Recipe, int], Group | None]]:
    """Per fold, the distinct training row sets, each with its rows and the fits (half-life,
    leaf refit) on it; and where each candidate's fold is (None: too few rows to score)."""
    groups: dict[Group, tuple[Rows, list[Fit]]] = {}
    where: dict[tuple[Recipe, int], Group | None] = {}
    times = data[spec.time_column]
    for i, (start, end) in enumerate(bounds):
        windows: dict[float | None, Rows] = {}
        for recipe in candidates:
            if recipe.window_days not in windows:
                windows[recipe.window_days] = _fold_rows(times, start, end, recipe.window_days)
            rows = windows[recipe.window_days]
            if len(rows[0]) < MIN_TRAIN_ROWS:
                where[recipe, i] = None
                continue
            # The window keeps a suffix of the time-ordered rows: its length names it.
            key = (i, len(rows[0]))
            lives = groups.setdefault(key, (rows, []))[1]
            if recipe.fit() not in lives:
                lives.append(recipe.fit())
            where[recipe, i] = key
    return groups, where


def _fit_groups(encoded: EncodedRows, groups: dict[Group, tuple[Rows, list[Fit]]],
                spec: DatasetSpec, settings: dict) -> dict[Group, dict[Fit, float]]:
    """The primary metric of every (row set, half-life, leaf refit) fit, BACKTEST_WORKERS at
    a time.

    A group's half-lives go in chunks of at most FITS_PER_DATASET, so that the threads share
    the work evenly (one more binning per chunk costs a few ms), the biggest first; a leaf
    refit goes with its half-life, whose booster it reuses."""
    jobs = [(key, [f for f in lives if f[0] in chunk])
            for key, (_, lives) in groups.items()
            for chunk in _chunks(list(dict.fromkeys(h for h, _ in lives)))]
    jobs.sort(key=lambda job: -job[0][1] * len(job[1]))

    def run(job: tuple[Group, list[Fit]]) -> dict[Fit, float]:
        train, scored = groups[job[0]][0]
        scores = range_scores(encoded, train, scored, spec, job[1], settings)
        fold = encoded.frame.iloc[scored]
        truth = truth_of(fold, spec) if encoded.y is None else encoded.y[scored]
        return {h: primary_metric(s, fold, spec, truth) for h, s in scores.items()}

    results = map_threads(run, jobs, workers=BACKTEST_WORKERS, name="greenlight-backtest")
    done: dict[Group, dict[Fit, float]] = {}
    for (key, _), result in zip(jobs, results, strict=True):
        done.setdefault(key, {}).update(result)
    return done


def _chunks(half_lives: list[float | None]) -> list[list[float | None]]:
    """`half_lives` in chunks of at most FITS_PER_DATASET, in order."""
    return [half_lives[j:j + FITS_PER_DATASET]
            for j in range(0, len(half_lives), FITS_PER_DATASET)]


