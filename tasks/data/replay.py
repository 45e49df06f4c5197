"""Replay: batches cut from a dataset and landed as a live feed would deliver them.

(The source interface a cycle reads, landing folder, SQL, bucket, is tasks/data/source.py.)
Two kinds of data are replayed: a built-in synthetic stream whose drifts sit at known
batches (so tests and demos can check that each one is caught), and real datasets replayed
as time-ordered batches. Either way a batch lands as one file, written atomically, because
a cycle may scan `landing/` at any moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.files import replacing
from tasks.data.spec import DatasetSpec, load_spec

REPO = Path(__file__).resolve().parents[2]
# Real datasets: where they sit under ../shared/data. They are never copied into the repo.
DATA_FILES = {"elec2": ("elec2", "elec2.csv.gz"), "bike_sharing": ("bike_sharing", "hour.csv"),
              # the same file, weathersit (1-4) as a multiclass target
              "bike_weathersit": ("bike_sharing", "hour.csv")}
# How a period's start names its batch: sortable, and safe in a file name.
PERIOD_LABELS = {"Y": "%Y", "Q": "%Y-Q{quarter}", "M": "%Y-%m", "W": "%G-W%V", "D": "%Y-%m-%d",
                 "h": "%Y-%m-%dT%H", "min": "%Y-%m-%dT%H%M", "s": "%Y-%m-%dT%H%M%S"}
ROWS_LABEL = "%Y-%m-%dT%H%M%S"
FORMATS = ("csv", "parquet")

# --- synthetic stream: a price-offer conversion model --------------------------------------
# Batch indices where the world changes (0-based; one batch = one ISO week from 2026-01-05):
# covariate: market "west" appears (60% of traffic), richer and younger, converting much less
# (the rate falls from ~0.38 to ~0.29: a model that never saw west decays ~9%);
# prior: list prices rise x1.5 (inflation), so the conversion rate falls from ~0.29 to ~0.16;
# concept: price sensitivity moves by age (under-40s stop caring, 40+ x4); features fixed.
SYNTHETIC_CHANGE_POINTS = {"covariate": 5, "prior": 10, "concept": 15}
# Batch 8 arrives corrupted: 5% of `converted` empty and 2% of `price` negative, which breaks
# expect_column_values_to_not_be_null(converted) and expect_column_values_to_be_between(price).
SYNTHETIC_MALFORMED = 8
SYNTHETIC_START = pd.Timestamp("2026-01-05")  # a Monday, so batches are ISO weeks 2026-W02..

WEST_SHARE = 0.6
INFLATION = 1.5
# Ground truth: logit = INTERCEPT + INCOME_EFFECT*log(income/45k)
#   - elasticity * (price*(1-discount) - PIVOT_PRICE)/100 + market + channel
#   + 0.012*min(tenure, 60) - 0.0006*(age-40)^2
INTERCEPT = -1.8
INCOME_EFFECT = 2.5
ELASTICITY = 2.0
PIVOT_PRICE = 230.0  # ~ the mean effective price after inflation: the concept change pivots
CONCEPT_ELASTICITY = {"under_40": 0.0, "40_plus": 8.0}  # here, so the label rate barely moves
MARKET_EFFECT = {"north": 0.0, "south": -0.3, "west": -2.5}
CHANNEL_EFFECT = {"web": 0.0, "app": 0.4, "branch": -0.5}
MARKETS, CHANNELS = tuple(MARKET_EFFECT), tuple(CHANNEL_EFFECT)


@dataclass(frozen=True, eq=False)
class Batch:
    """One period of rows; `label` sorts in time order and becomes the landed file's stem."""

    label: str
    frame: pd.DataFrame


def _applicants(rng: np.random.Generator, rows: int, index: int) -> pd.DataFrame:
    """Who is offered what. West applicants differ in income, age and channel, which is
    what makes their arrival a covariate shift and not just a new category."""
    west = rng.random(rows) < (WEST_SHARE if index >= SYNTHETIC_CHANGE_POINTS["covariate"] else 0)
    market = np.where(west, "west", np.where(rng.random(rows) < 0.55, "north", "south"))
    log_mu = np.select([west, market == "north"], [np.log(62_000), np.log(45_000)], np.log(38_000))
    income = np.exp(rng.normal(log_mu, np.where(west, 0.45, 0.5))).round(-2).clip(8_000, 400_000)
    age = np.where(west, rng.normal(33, 8, rows), rng.normal(46, 13, rows)).round().clip(18, 90)
    u = rng.random(rows)
    channel = np.where(u < 0.45, "web", np.where(u < np.where(west, 0.90, 0.75), "app", "branch"))
    tenure = np.minimum(rng.exponential(30, rows), (age - 18) * 12).astype(np.int64)
    inflation = INFLATION if index >= SYNTHETIC_CHANGE_POINTS["prior"] else 1.0
    price = (np.exp(rng.normal(np.log(180), 0.45, rows)) * inflation).round(2)
    discount = rng.choice([0.0, 0.05, 0.1, 0.2, 0.3, 0.5], rows, p=[.4, .15, .15, .15, .1, .05])
    return pd.DataFrame({"market": market, "channel": channel, "income": income,
                         "age": age.astype(np.int64), "price": price, "discount": discount,
                         "tenure_months": tenure})


def conversion_probability(frame: pd.DataFrame, index: int) -> np.ndarray:
    """The true P(converted | x) in batch `index`; exposed so tests can measure the drifts
    against the truth instead of against a model."""
    age = frame["age"].to_numpy()
    if index >= SYNTHETIC_CHANGE_POINTS["concept"]:
        elasticity = np.where(age < 40, CONCEPT_ELASTICITY["under_40"],
                              CONCEPT_ELASTICITY["40_plus"])
    else:
        elasticity = np.full(len(frame), ELASTICITY)
    paid = frame["price"].to_numpy() * (1 - frame["discount"].to_numpy())
    logit = (INTERCEPT + INCOME_EFFECT * np.log(frame["income"].to_numpy() / 45_000)
             - elasticity * (paid - PIVOT_PRICE) / 100
             + frame["market"].map(MARKET_EFFECT).to_numpy()
             + frame["channel"].map(CHANNEL_EFFECT).to_numpy()
             + 0.012 * np.minimum(frame["tenure_months"].to_numpy(), 60)
             - 0.0006 * (age - 40) ** 2)
    return 1 / (1 + np.exp(-logit))


def _corrupt(frame: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """An upstream export bug: labels not joined yet, refunds booked as negative prices."""
    bad = frame.copy()
    bad["converted"] = bad["converted"].astype("float64").mask(rng.random(len(bad)) < 0.05)
    bad["price"] = bad["price"].mask(rng.random(len(bad)) < 0.02, -bad["price"])
    return bad


def synthetic_batch(index: int, seed: int = 7, rows: int = 3000) -> Batch:
    """Batch `index` of the stream; its own seed, so stable stretches are i.i.d. draws."""
    rng = np.random.default_rng([seed, index])
    start = SYNTHETIC_START + pd.Timedelta(weeks=index)
    frame = _applicants(rng, rows, index)
    frame["converted"] = (rng.random(rows) < conversion_probability(frame, index)).astype(np.int64)
    seconds = np.sort(rng.uniform(0, 7 * 86_400, rows)).round()
    frame.insert(0, "timestamp", start + pd.to_timedelta(seconds, unit="s"))
    if index == SYNTHETIC_MALFORMED:
        frame = _corrupt(frame, rng)
    return Batch(f"{start:%G-W%V}", frame)


def synthetic_stream(seed: int = 7, n_batches: int = 20, rows: int = 3000) -> list[Batch]:
    """Weekly batches with covariate, prior and concept drift at SYNTHETIC_CHANGE_POINTS."""
    return [synthetic_batch(i, seed, rows) for i in range(n_batches)]


# --- real datasets --------------------------------------------------------------------------
def default_data_path(name: str) -> Path | None:
    """The dataset's file in the sibling ../shared/data checkout, if there is one."""
    if name not in DATA_FILES:
        return None
    path = REPO.parent / "shared" / "data" / DATA_FILES[name][0] / DATA_FILES[name][1]
    return path if path.exists() else None


def _read(name: str, path: Path) -> pd.DataFrame:
    """Each source's own format, brought to a frame that carries the spec's time column."""
    if name == "elec2":
        return pd.read_csv(path, parse_dates=["timestamp"])
    if name in ("bike_sharing", "bike_weathersit"):
        raw = pd.read_csv(path)
        raw["timestamp"] = pd.to_datetime(raw["dteday"]) + pd.to_timedelta(raw["hr"], unit="h")
        return raw
    if path.name.endswith(".parquet"):
        return pd.read_parquet(path)
    return pd.read_csv(path, parse_dates=[load_spec(name).time_column])


def load_dataset(name: str, path: Path | None = None) -> pd.DataFrame:
    """The whole dataset as spec columns in time order; any problem is one line naming the file."""
    spec = load_spec(name)
    path = Path(path) if path is not None else default_data_path(name)
    if path is None:
        wanted = "/".join(DATA_FILES.get(name, (name, "<file>")))
        raise ValueError(f"{name}: no data file given and {wanted} not found in ../shared/data")
    if path.is_dir() and name in DATA_FILES:
        path = path / DATA_FILES[name][1]
    if not path.is_file():
        raise ValueError(f"{path}: no such file (the {name} dataset)")
    try:
        frame = _read(name, path)
    except Exception as exc:  # pandas raises many types for unreadable input
        raise ValueError(f"{path}: cannot be read: {exc}".splitlines()[0]) from None
    missing = [c for c in spec.columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} for {name}")
    frame = frame[spec.columns].sort_values(spec.time_column, kind="stable")
    return frame.reset_index(drop=True)


# The offset aliases a user may write for each period unit (pandas' names old and new).
UNIT_ALIASES = {"Y": "Y", "A": "Y", "YE": "Y", "YS": "Y", "Q": "Q", "QE": "Q", "QS": "Q",
                "M": "M", "ME": "M", "MS": "M", "W": "W", "D": "D", "H": "h", "h": "h",
                "T": "min", "min": "min", "S": "s", "s": "s"}


def _periods(times: pd.Series, freq: str) -> tuple[pd.PeriodIndex, int, str]:
    """Each time's calendar period, how many periods make a batch (2W: 2), and the label
    format; one line naming the alias when it is not a calendar unit."""
    import re

    match = re.fullmatch(r"(\d*)([A-Za-z]+)(-[A-Za-z]{3})?", freq.strip())
    unit = UNIT_ALIASES.get(match.group(2)) if match else None
    every = int(match.group(1) or 1) if match else 0
    if unit is None or every < 1:
        raise ValueError(f"freq {freq!r}: use a calendar unit, {', '.join(PERIOD_LABELS)}, "
                         "with a multiple if wanted (2W, 3M, 6h), or --rows N")
    anchor = (match.group(3) or "").upper()  # Y-JUN: years that end in June; W-MON: weeks too
    try:
        periods = pd.PeriodIndex(times.dt.to_period(unit + anchor))
    except ValueError as exc:
        raise ValueError(f"freq {freq!r}: {exc}".splitlines()[0]) from None
    return periods, every, PERIOD_LABELS[unit]


def cut_batches(frame: pd.DataFrame, spec: DatasetSpec, freq: str) -> list[Batch]:
    """Calendar-period batches in time order, as a live feed would have delivered them.

    `freq` is a pandas offset alias: Y, Q, M, W, D, h, min or s, with a multiple if wanted
    (2W is two weeks a batch, counted from the first period that has rows). Empty periods
    land nothing."""
    frame = frame.sort_values(spec.time_column, kind="stable").reset_index(drop=True)
    periods, every, label = _periods(frame[spec.time_column], freq)
    ordinals = periods.asi8
    groups = (ordinals - ordinals.min()) // every if len(frame) else ordinals
    batches = []
    for _, part in frame.groupby(groups, sort=True):
        start = periods[part.index[0]].start_time
        name = start.strftime(label.replace("{quarter}", str(start.quarter)))
        batches.append(Batch(name, part.reset_index(drop=True)))
    return batches


def cut_rows(frame: pd.DataFrame, spec: DatasetSpec, rows: int) -> list[Batch]:
    """Batches of `rows` rows in time order (the last one may be shorter), for feeds that
    deliver by count rather than by calendar; each is named by its first row's time."""
    if rows < 1:
        raise ValueError(f"--rows {rows}: a batch needs at least one row")
    frame = frame.sort_values(spec.time_column, kind="stable").reset_index(drop=True)
    batches: list[Batch] = []
    for first in range(0, len(frame), rows):
        part = frame.iloc[first:first + rows].reset_index(drop=True)
        name = pd.Timestamp(part[spec.time_column].iloc[0]).strftime(ROWS_LABEL)
        if batches and name <= batches[-1].label:  # same first time: keep names unique, sorted
            name = f"{batches[-1].label}-{len(batches):05d}"
        batches.append(Batch(name, part))
    return batches


def write_batch(batch: Batch, landing: Path, fmt: str = "csv") -> Path:
    """Write to a hidden temp name, then rename: a scan never sees a half-written file."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: use csv or parquet")
    dest = landing / f"{batch.label}.{fmt}"
    with replacing(dest) as tmp:
        if fmt == "csv":
            batch.frame.to_csv(tmp, index=False, date_format="%Y-%m-%dT%H:%M:%S")
        else:
            batch.frame.to_parquet(tmp, index=False)
    return dest
