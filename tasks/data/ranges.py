"""The numeric ranges `greenlight init` infers: robust to a few bad rows, with no sign rule
on a measured quantity.

A range from the sample's min and max guards nothing when the sample holds a bad row: two
sea-level pressures of 5503 hPa among 980..1048 gave 0..6640, and the bad rows passed. And
"never below 0 when nothing was negative" quarantined ten valid years of a temperature in
°F whose first five years happened to stay above 0. So:

- The core of a column is its 0.1% and 99.9% quantiles (on a small sample, at least the
  two most extreme values each side are left out of the core: `tail_share`); its span
  (core high - core low) is the column's scale, which a few bad rows cannot move.
- The tails are followed outward from the core value by value while no gap between two
  neighbours is wider than `ISOLATION` spans: a long but continuous tail (incomes,
  prices, rentals: the widest gap measured on the shipped data was 0.31 of the span) stays
  in the range. A value cut off from the rest by more than a whole span is an **extreme
  outlier** (5503 hPa after 1048: a gap of ~70 spans; a 9999 sentinel; °F read as K).
- The range is what the tails reach, widened by `MARGIN` of the span each side, rounded
  outward. The extreme outliers are listed for review and left out of the sample's own
  validation, so the suite is written and a later batch holding such a value is
  quarantined.
- The floor of 0 is kept only for what is clearly a count or a code: integer values that
  reach 0 exactly and never go below (hours, rentals, a weekday code). A measured quantity
  (any float; an integer column whose minimum is not 0) gets no sign rule: its floor is
  the margin's, negative or not.
- A column whose values all lie in [0, 1] is a share or a min-max normalised field (Elec2,
  Bike Sharing) and keeps 0..1, as before.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

# The core's quantiles, each side.
CORE_QUANTILE = 0.001
# On a small sample the 0.1% quantile is the extreme value itself: leave out at least this
# many values each side (at most 1% of the sample) before taking the core.
MIN_TAIL_VALUES = 2
MAX_TAIL_SHARE = 0.01
# The core widened by this share of its span on each side: a fitted bound, not a
# structural one, so a little room keeps ordinary variation from quarantining a batch.
MARGIN = 0.25
# A value this many core spans away from its nearest neighbour towards the core is cut off.
ISOLATION = 1.0
SHOWN_OUTLIERS = 5


def is_integer(series: pd.Series) -> bool:
    """Integer-valued, even when read as float because of an empty cell."""
    values = series.dropna()
    return pd.api.types.is_integer_dtype(series) or (
        pd.api.types.is_float_dtype(series) and len(values) > 0
        and bool((values == values.round()).all()))


def nice(value: float, step: float, up: bool) -> float | int:
    """Round outward to a multiple of `step`, without float dust (0.30000000000000004)."""
    n = math.ceil(value / step - 1e-9) if up else math.floor(value / step + 1e-9)
    digits = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    out = round(n * step, digits)
    return int(out) if step >= 1 else out


def fmt(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def tail_share(rows: int) -> float:
    """The share left out each side before the core is taken: 0.1%, or two values of a
    small sample (capped at 1%)."""
    return min(max(CORE_QUANTILE, MIN_TAIL_VALUES / max(rows, 1)), MAX_TAIL_SHARE)


def numeric_bounds(series: pd.Series, *, headroom: float = MARGIN) -> tuple[Any, Any, str]:
    """Bounds for a numeric column and why, in words (see the module docstring); the upper
    side gets `headroom` of the core's span (a regression target's room to grow)."""
    values = series.dropna().astype(float)
    lo, hi = float(values.min()), float(values.max())
    integer = is_integer(series)
    if 0 <= lo and hi <= 1 and headroom == MARGIN:
        return 0, 1, "all values in [0, 1]: kept to 0..1"
    share = tail_share(len(values))
    core_lo, core_hi = (float(q) for q in values.quantile([share, 1 - share]))
    span = (core_hi - core_lo) or abs(core_hi) or 1.0
    reach_lo, reach_hi = reach(values, core_lo, core_hi, ISOLATION * span)
    low, high = reach_lo - MARGIN * span, reach_hi + headroom * span
    count = integer and lo == 0  # a count or a code that reaches 0: 0 is its floor
    if count:
        low = max(low, 0.0)
    step = 1.0 if integer else 10.0 ** (math.floor(math.log10(span)) - 2)
    low, high = nice(low, max(step, 1.0) if integer else step, False), nice(
        high, max(step, 1.0) if integer else step, True)
    floor = " (not below 0: integer values that reach 0, a count or a code)" \
        if count and low == 0 else ""
    return low, high, (f"observed {fmt(lo)}..{fmt(hi)}, {share:.1%}..{1 - share:.1%} "
                       f"quantiles {fmt(core_lo)}..{fmt(core_hi)}{floor}")


def reach(values: pd.Series, core_lo: float, core_hi: float, gap: float
          ) -> tuple[float, float]:
    """How far the tails go from the core without a gap wider than `gap` between two
    neighbouring values: the smallest and largest values still joined to the core."""
    ordered = np.sort(values.to_numpy(dtype=float))
    above, below = ordered[ordered >= core_hi], ordered[ordered <= core_lo][::-1]
    ends = []
    for tail, start in ((above, core_hi), (below, core_lo)):
        steps = np.abs(np.diff(np.concatenate([[start], tail])))
        cut = np.flatnonzero(steps > gap)
        joined = tail[:cut[0]] if len(cut) else tail
        ends.append(float(joined[-1]) if len(joined) else start)
    return ends[1], ends[0]


def outliers(series: pd.Series, low: Any, high: Any) -> pd.Series:
    """The sample's values outside the inferred range: its extreme outliers."""
    values = series.dropna()
    return values[(values < low) | (values > high)]


def outlier_line(column: str, found: pd.Series, low: Any, high: Any) -> str:
    """The review line naming a column's extreme outliers."""
    shown = sorted({fmt(float(v)) for v in found}, key=float)
    more = f", … ({len(shown) - SHOWN_OUTLIERS} more)" if len(shown) > SHOWN_OUTLIERS else ""
    return (f"{column}: {len(found):,} extreme outlier(s) in the sample "
            f"({', '.join(shown[:SHOWN_OUTLIERS])}{more}), outside the inferred range "
            f"{fmt(low)}..{fmt(high)}: a unit error or a sentinel? A batch holding such a "
            "value is quarantined; if they are real, widen the range in suite.json (the "
            "sample's validation leaves these rows out)")
