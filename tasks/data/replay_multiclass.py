"""The built-in multiclass stream: support tickets routed to one of four teams.

As the binary stream (tasks/data/replay.py), weekly batches from 2026-01-05 whose drifts sit
at known batches, so tests and the demo can check that each is caught:
- covariate (batch 5): region "east" appears (50% of tickets), with older devices, more
  items per order and longer waits; east tickets are mostly about shipping, so a model that
  never saw east is wrong more often there;
- prior (batch 10): a billing system change makes billing tickets far more common (the
  billing share goes from ~8% to ~20%, east included): label drift, and a champion
  that under-calls billing;
- concept (batch 15): a minimum fee flips who writes about billing: it was big orders, it
  is now small ones (and account questions the other way round); the features'
  distribution is fixed and, order values being symmetric on a log scale, the class shares
  barely move, so only the labels show it.
Batch 8 arrives with 1% of tickets labelled "refund", a team that does not exist: the
suite's class set refuses it, one line in the quarantine report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tasks.data.replay import SYNTHETIC_START, Batch

MULTICLASS_CHANGE_POINTS = {"covariate": 5, "prior": 10, "concept": 15}
MULTICLASS_MALFORMED = 8
CLASSES = ("account", "billing", "shipping", "technical")
EAST_SHARE = 0.5
BILLING_SURGE = 1.3  # added to billing's logit from the prior change on
REGION_EFFECT = {"north": (0.0, 0.0, 0.0, 0.0), "south": (0.2, 0.0, -0.2, 0.0),
                 "east": (-0.6, -0.4, 1.6, -0.3)}
REGIONS = tuple(REGION_EFFECT)


def _tickets(rng: np.random.Generator, rows: int, index: int) -> pd.DataFrame:
    """Who writes in, from where, about what order: east customers differ in device age,
    basket size and wait, which is what makes their arrival a covariate shift."""
    east = rng.random(rows) < (EAST_SHARE if index >= MULTICLASS_CHANGE_POINTS["covariate"]
                               else 0)
    region = np.where(east, "east", np.where(rng.random(rows) < 0.55, "north", "south"))
    u = rng.random(rows)
    channel = np.where(u < 0.5, "email", np.where(u < 0.8, "chat", "phone"))
    device_age = rng.gamma(2.0, np.where(east, 400, 250), rows).round()
    items = rng.poisson(np.where(east, 4.0, 2.0), rows) + 1
    wait = rng.exponential(np.where(east, 30, 15), rows).round(1)
    tenure = rng.exponential(24, rows).astype(np.int64)
    value = np.exp(rng.normal(np.log(120), 0.6, rows)).round(2)
    return pd.DataFrame({"region": region, "channel": channel, "tenure_months": tenure,
                         "order_value": value, "items": items, "wait_minutes": wait,
                         "device_age_days": device_age})


def ticket_probabilities(frame: pd.DataFrame, index: int) -> np.ndarray:
    """The true P(team | x) in batch `index`, columns in CLASSES order; exposed so tests can
    measure the drifts against the truth instead of against a model."""
    n = len(frame)
    device = frame["device_age_days"].to_numpy() / 365
    items = frame["items"].to_numpy()
    wait = frame["wait_minutes"].to_numpy() / 30
    tenure = np.minimum(frame["tenure_months"].to_numpy(), 60) / 12
    value = np.log(frame["order_value"].to_numpy() / 120)
    phone = (frame["channel"].to_numpy() == "phone").astype(float)
    concept = index >= MULTICLASS_CHANGE_POINTS["concept"]
    logits = np.zeros((n, len(CLASSES)))
    flip = -1.0 if concept else 1.0
    logits[:, 0] = -0.2 + 0.5 * tenure - 0.6 * flip * value
    logits[:, 1] = 0.6 + 1.5 * flip * value + 0.8 * phone - 0.3 * tenure
    logits[:, 2] = -0.6 + 0.45 * items + 0.9 * wait
    logits[:, 3] = -0.4 + 1.2 * device + 0.3 * tenure
    if index >= MULTICLASS_CHANGE_POINTS["prior"]:
        logits[:, 1] += BILLING_SURGE
    logits += np.array([REGION_EFFECT[r] for r in frame["region"]])
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def multiclass_batch(index: int, seed: int = 7, rows: int = 3000) -> Batch:
    """Batch `index` of the stream; its own seed, so stable stretches are i.i.d. draws."""
    rng = np.random.default_rng([seed, index, 3])
    start = SYNTHETIC_START + pd.Timedelta(weeks=index)
    frame = _tickets(rng, rows, index)
    p = ticket_probabilities(frame, index)
    drawn = (rng.random(rows)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    frame["team"] = np.asarray(CLASSES, dtype=object)[np.minimum(drawn, len(CLASSES) - 1)]
    seconds = np.sort(rng.uniform(0, 7 * 86_400, rows)).round()
    frame.insert(0, "timestamp", start + pd.to_timedelta(seconds, unit="s"))
    if index == MULTICLASS_MALFORMED:
        frame.loc[rng.random(rows) < 0.01, "team"] = "refund"
    return Batch(f"{start:%G-W%V}", frame)


def multiclass_stream(seed: int = 7, n_batches: int = 20, rows: int = 3000) -> list[Batch]:
    """Weekly batches with covariate, prior and concept drift at MULTICLASS_CHANGE_POINTS."""
    return [multiclass_batch(i, seed, rows) for i in range(n_batches)]
