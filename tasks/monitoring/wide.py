"""Per-column drift for wide batches: Evidently 0.7's per-column stat tests, a block at a time.

Evidently judges each column on its own, through pandas and scipy, and draws its plots as it
goes: about 0.26 s a column at 10,000 rows on this machine, so 1,000 columns take minutes,
and 3M x 1k rows took 6 h (evidently#1526, where the maintainers' advice is a smaller sample
and column drift computed column by column). The tests themselves are cheap: a normed
Wasserstein distance is mostly a sort, a Jensen-Shannon distance is a count of values. Here
numerical columns go through numpy a block at a time (one conversion, one sort per side, one
pass for the distances) and categorical ones through one `value_counts` per side.

It reproduces what `drift.measure_drift` asks of Evidently, column by column (checked against
`evidently/legacy/calculations/stattests/` and `legacy/calculations/data_drift.py`, 0.7.23):
- missing and infinite values are dropped first, and the test is chosen on what remains
  (`_get_default_stattest`): more than 1000 reference values: normed Wasserstein distance for
  a numerical column with more than 5 distinct values in reference and current together,
  Jensen-Shannon distance otherwise (categorical, or numerical with few values); at most 1000:
  K-S for numerical columns with more than 5 values, chi-square for more than 2, the z-test
  for 2 or fewer. Drift is score >= 0.1 for the distances, p <= 0.05 for K-S, p < 0.05 for
  chi-square and z (Evidently's comparisons, kept as they are).
- categories compare as strings, as `drift.py` writes them (`as_category`).
- a method named in `StatTests` (wasserstein, ks, jensenshannon, psi, chisquare, z) is used as
  named and reported by that name; a threshold replaces the method's default. Any other
  method is left to Evidently: `column_drift` leaves such a column out of its answer.
- a column empty on either side (all missing) gets drift.py's verdict: Evidently raises there.

Numbers are float32 where that is exact (float32 columns, integers below 2**24, booleans) and
float64 otherwise; sums run in float64 either way, so a score differs from Evidently's by
rounding only (~1e-12 relative), which can flip a verdict only at a score within that of the
threshold. `tests/test_wide_drift.py` compares verdicts and scores with Evidently's on real
data; `benchmarks/wide_drift.py` on 1,000 columns.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

# Evidently's default tests (stattests/registry.py `_get_default_stattest`)
SMALL_REFERENCE = 1000  # up to this many reference values: p-value tests, above: distances
FEW_VALUES = 5  # a numerical column with at most this many distinct values is counted, not sorted
FEW_BINNED = 20  # get_binned_data: at most this many reference values are counted, not binned
# Evidently's display names (the method reported when Evidently chose it) and default cuts.
WASSERSTEIN, JENSEN_SHANNON = "Wasserstein distance (normed)", "Jensen-Shannon distance"
KS, CHI_SQUARE, Z_TEST, PSI = "K-S p_value", "chi-square p_value", "Z-test p_value", "PSI"
DEFAULT_CUT = {WASSERSTEIN: 0.1, JENSEN_SHANNON: 0.1, PSI: 0.1, KS: 0.05, CHI_SQUARE: 0.05,
               Z_TEST: 0.05}
P_VALUES = frozenset({KS, CHI_SQUARE, Z_TEST})
# The names a user may give in StatTests, per column type; anything else is Evidently's job.
NAMED_NUMERICAL = {"wasserstein": WASSERSTEIN, "ks": KS, "jensenshannon": JENSEN_SHANNON,
                   "psi": PSI}
NAMED_CATEGORICAL = {"jensenshannon": JENSEN_SHANNON, "psi": PSI, "chisquare": CHI_SQUARE,
                     "z": Z_TEST}
# A block of columns is converted and sorted at once: big enough that numpy's per-call cost
# vanishes, small enough that two blocks and their temporaries stay a few hundred MB.
BLOCK_BYTES = 64 * 2**20
EXACT_FLOAT32 = 2**24  # integers up to this are exact in float32


@dataclass(frozen=True)
class ColumnDrift:
    """One column's verdict, as drift.py reports it (score, method name, drifted)."""

    score: float
    method: str
    drifted: bool
    threshold: float = math.nan

    @property
    def severity(self) -> float:
        """How far past its cut a column is (> 1: drifted), comparable across methods: the
        score over the cut for distances, the cut over the p-value for p-value tests."""
        if math.isnan(self.threshold):  # missing on one side (inf) or both (0)
            return self.score
        if any(self.method == m or _named(self.method) == m for m in P_VALUES):
            return self.threshold / max(self.score, 1e-300)
        return self.score / self.threshold


def _named(method: str) -> str | None:
    return NAMED_NUMERICAL.get(method) or NAMED_CATEGORICAL.get(method)


def missing_verdict(ref_values: int, cur_values: int) -> ColumnDrift | None:
    """Evidently raises on a column with no values; values appearing or vanishing is drift."""
    if ref_values == 0 and cur_values == 0:
        return ColumnDrift(0.0, "all values missing in both", False)
    if ref_values == 0 or cur_values == 0:
        side = "reference" if ref_values == 0 else "current"
        return ColumnDrift(math.inf, f"all values missing in {side}", True)
    return None


def as_category(s: pd.Series) -> pd.Series:
    """Strings, so 1, 1.0 and '1' from different readers are the same category."""
    numeric = pd.api.types.is_float_dtype(s)
    if numeric and bool((s.dropna() % 1 == 0).all()):
        s = s.astype("Int64")
    return s.astype(object).map(str, na_action="ignore")


def _verdict(score: float, method: str, named: str | None, threshold: float | None,
             ) -> ColumnDrift:
    """Evidently's comparison for the test: >= for distances, <= for K-S, < for chi² and z."""
    test = named or method
    cut = DEFAULT_CUT[test] if threshold is None else threshold
    if test == KS:
        drifted = score <= cut
    elif test in P_VALUES:
        drifted = score < cut
    else:
        drifted = score >= cut
    return ColumnDrift(float(score), method, bool(drifted), cut)


# --- tests on value counts (categorical columns, numerical ones with few values) ---


def _jensen_shannon(ref: np.ndarray, cur: np.ndarray) -> float:
    """scipy's `distance.jensenshannon` on the two shares, natural log, as Evidently calls it."""
    from scipy.spatial import distance

    return float(distance.jensenshannon(ref / ref.sum(), cur / cur.sum()))


def _filled(shares: np.ndarray) -> np.ndarray:
    """get_binned_data's `feel_zeroes` (for PSI): an empty bin gets a tiny share instead."""
    smallest = shares[shares != 0].min()
    return np.where(shares == 0, smallest / 10**6 if smallest <= 0.0001 else 0.0001, shares)


def _psi(ref: np.ndarray, cur: np.ndarray) -> float:
    p, q = _filled(ref / ref.sum()), _filled(cur / cur.sum())
    return float(np.sum((p - q) * np.log(p / q)))


def _chi_square(ref: np.ndarray, cur: np.ndarray) -> float:
    """Evidently's chi-square: current counts against reference counts scaled to its size."""
    from scipy.stats import chisquare

    with np.errstate(divide="ignore", invalid="ignore"):  # a new value: p = 0, as Evidently's
        return float(chisquare(cur, ref * (cur.sum() / ref.sum()))[1])


def _z_test(keys: list, ref: np.ndarray, cur: np.ndarray) -> float:
    """Evidently's two-proportion z-test: the share of values other than the smallest key,
    written as Evidently writes it so the floats come out the same."""
    from scipy.stats import norm

    if len(keys) == 1:  # one value, the same on both sides
        return 1.0
    first = keys.index(min(keys))
    n1, n2 = float(ref.sum()), float(cur.sum())
    p1, p2 = (n1 - ref[first]) / n1, (n2 - cur[first]) / n2
    both = float(p1 * n1 + p2 * n2) / (n1 + n2)
    z = (p1 - p2) / np.sqrt(both * (1 - both) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - norm.cdf(np.abs(z))))


def _counted(keys: list, ref: np.ndarray, cur: np.ndarray, method: str, named: str | None,
             threshold: float | None) -> ColumnDrift:
    """A test on the counts of each value on both sides (aligned on `keys`)."""
    test = named or method
    ref, cur = ref.astype(np.float64), cur.astype(np.float64)
    if test == JENSEN_SHANNON:
        score = _jensen_shannon(ref, cur)
    elif test == PSI:
        score = _psi(ref, cur)
    elif test == CHI_SQUARE:
        score = _chi_square(ref, cur)
    else:
        score = _z_test(keys, ref, cur)
    return _verdict(score, method, named, threshold)


def _auto_counted(n_ref: int, n_values: int) -> str:
    """Evidently's choice for a categorical column (or a numerical one with few values)."""
    if n_ref > SMALL_REFERENCE:
        return JENSEN_SHANNON
    return CHI_SQUARE if n_values > 2 else Z_TEST


def _category_counts(s: pd.Series) -> pd.Series:
    """Counts per category, categories written as `as_category` writes them: counted on the
    raw values (hashing, fast) and only the distinct values turned into strings."""
    counts = s.value_counts(dropna=True, sort=False)
    counts = counts[counts > 0]  # a `category` column also lists the categories it lacks
    if counts.empty:
        return counts
    keys = as_category(pd.Series(counts.index, dtype=s.dtype))
    return counts.groupby(keys.to_numpy(), sort=False).sum()


def _categorical(ref: pd.Series, cur: pd.Series, method: str | None,
                 threshold: float | None) -> ColumnDrift | None:
    r, c = _category_counts(ref), _category_counts(cur)
    n_ref, n_cur = int(r.sum()), int(c.sum())
    if (empty := missing_verdict(n_ref, n_cur)) is not None:
        return empty
    keys = list(r.index.union(c.index, sort=False))
    ref_counts = r.reindex(keys, fill_value=0).to_numpy()
    cur_counts = c.reindex(keys, fill_value=0).to_numpy()
    if method is None:
        auto = _auto_counted(n_ref, len(keys))
        return _counted(keys, ref_counts, cur_counts, auto, None, threshold)
    named = NAMED_CATEGORICAL.get(method)
    if named is None:
        return None
    return _counted(keys, ref_counts, cur_counts, method, named, threshold)


# --- numerical columns, a block at a time ---


def _float32_exact(s: pd.Series) -> bool:
    """float32 holds this column's values exactly: float32 itself, booleans, small integers."""
    dtype = s.dtype
    if dtype == np.float32 or pd.api.types.is_bool_dtype(dtype):
        return True
    if pd.api.types.is_integer_dtype(dtype):
        values = s.dropna()
        return values.empty or bool(values.abs().max() <= EXACT_FLOAT32)
    return False


def _values(s: pd.Series, dtype: type) -> np.ndarray:
    """drift.py's `_as_numeric` (anything not a number is missing), without its float64 copy
    of float32 data."""
    if not (pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype)):
        s = pd.to_numeric(s, errors="coerce")
    return s.to_numpy(dtype=dtype, na_value=np.nan)


def _block(frame: pd.DataFrame, columns: Sequence[str], dtype: type) -> np.ndarray:
    """The columns as rows of one C-ordered array (k x n), sorted, non-finite values last as
    NaN (Evidently drops infinities with the missing values)."""
    out = np.empty((len(columns), len(frame)), dtype=dtype)
    for i, column in enumerate(columns):
        out[i] = _values(frame[column], dtype)
    out[~np.isfinite(out)] = np.nan
    out.sort(axis=1)  # NaN sort last: each row's values are its first `count` entries
    return out


def _distinct(sorted_block: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Distinct values per row of a sorted block: value changes, minus the NaN tail's."""
    changes = np.count_nonzero(sorted_block[:, 1:] != sorted_block[:, :-1], axis=1)
    return np.where(counts > 0, changes - (sorted_block.shape[1] - counts) + 1, 0)


@lru_cache(maxsize=8)
def _quantile_grid(n_u: int, n_v: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The steps of two empirical quantile functions of n_u and n_v points: on each step
    both are constant, so W1 = sum(width * |u[iu] - v[iv]|), the same integral scipy's
    `wasserstein_distance` takes over the CDFs. Steps are at i/n_u and j/n_v, written in
    units of 1/(n_u*n_v) so they are exact integers; they depend on the sizes only, so a
    whole block of columns shares them (and the cache keeps them for the next block)."""
    ends = np.concatenate([np.arange(1, n_u + 1, dtype=np.int64) * n_v,
                           np.arange(1, n_v + 1, dtype=np.int64) * n_u])
    ends.sort()
    ends = ends[np.concatenate([[True], ends[1:] != ends[:-1]])]
    widths = np.diff(ends, prepend=0) / (n_u * n_v)
    return (ends - 1) // n_v, (ends - 1) // n_u, widths


def _wasserstein(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """First Wasserstein distance per row of two sorted blocks with no missing values."""
    n_u, n_v = u.shape[1], v.shape[1]
    out = np.empty(u.shape[0])
    short, long = (u, v) if n_u <= n_v else (v, u)
    m, rest = divmod(long.shape[1], short.shape[1])
    if not rest:  # equal sizes, or each value of the short side faces m of the long one's
        for i in range(u.shape[0]):
            pairs = np.subtract(long[i].reshape(-1, m), short[i][:, None], dtype=np.float64)
            out[i] = np.abs(pairs).mean()
        return out
    iu, iv, widths = _quantile_grid(n_u, n_v)
    for i in range(u.shape[0]):
        out[i] = np.abs(np.subtract(u[i, iu], v[i, iv], dtype=np.float64)) @ widths
    return out


def _std(block: np.ndarray) -> np.ndarray:
    """np.std (ddof 0) per row in float64, as Evidently takes it of a float64 Series; a row
    at a time (`std(axis=1, dtype=float64)` casts in small strided chunks: 2x slower)."""
    return np.array([row.astype(np.float64).std() for row in block])


def _normed_wasserstein(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Evidently's normed Wasserstein: W1 over the reference's std (ddof 0), at least 0.001."""
    return _wasserstein(u, v) / np.maximum(_std(u), 0.001)


def _sorted_counts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values and their counts of a sorted array, in one pass (np.unique hashes)."""
    starts = np.flatnonzero(np.concatenate([[True], x[1:] != x[:-1]]))
    return x[starts], np.diff(np.append(starts, x.size))


def _numeric_choice(method: str | None, n_ref: int, n_values: int,
                    ) -> tuple[str, str | None] | None:
    """(method to report, Evidently's name of the test), or None: not one of ours."""
    if method is None:
        if n_values > FEW_VALUES:
            return (WASSERSTEIN if n_ref > SMALL_REFERENCE else KS), None
        return _auto_counted(n_ref, n_values), None
    named = NAMED_NUMERICAL.get(method)
    return None if named is None else (method, named)


def _binned(u: np.ndarray, v: np.ndarray, psi: bool) -> float:
    """Jensen-Shannon or PSI of a numerical column with many values: Evidently's own
    `get_binned_data` (Sturges bins over both sides), on the float64 values it would see.
    Only for a method named in StatTests; Evidently's default never bins."""
    from evidently.legacy.calculations.stattests.utils import get_binned_data
    from evidently.legacy.core import ColumnType
    from scipy.spatial import distance

    ref, cur = get_binned_data(pd.Series(u, dtype=np.float64), pd.Series(v, dtype=np.float64),
                               ColumnType.Numerical, 30, psi)
    if psi:
        return float(np.sum((ref - cur) * np.log(ref / cur)))
    return float(distance.jensenshannon(ref, cur))


def _counts_of(u: np.ndarray, v: np.ndarray) -> tuple[list, np.ndarray, np.ndarray]:
    """The distinct values of two sorted arrays and each one's count on either side."""
    (ref_keys, ref_counts), (cur_keys, cur_counts) = _sorted_counts(u), _sorted_counts(v)
    keys = np.union1d(ref_keys, cur_keys)
    ref, cur = np.zeros(keys.size, np.int64), np.zeros(keys.size, np.int64)
    ref[np.searchsorted(keys, ref_keys)] = ref_counts
    cur[np.searchsorted(keys, cur_keys)] = cur_counts
    return keys.tolist(), ref, cur


def _one_numeric(u: np.ndarray, v: np.ndarray, distinct: tuple[int, int], method: str | None,
                 threshold: float | None) -> ColumnDrift | None:
    """A numerical column whose test is not the block's vectorised Wasserstein: few values,
    K-S, the binned tests, or sizes of its own (missing values). `u` and `v` are sorted."""
    from scipy.stats import ks_2samp

    counted = None
    if max(distinct) > FEW_VALUES:
        n_values = FEW_VALUES + 1  # enough to choose the test; the exact count is not needed
    else:
        counted = _counts_of(u, v)
        n_values = len(counted[0])
    choice = _numeric_choice(method, u.size, n_values)
    if choice is None:
        return None
    shown, named = choice
    test = named or shown
    if test == WASSERSTEIN:
        return _verdict(float(_normed_wasserstein(u[None], v[None])[0]), shown, named, threshold)
    if test == KS:
        return _verdict(float(ks_2samp(u, v)[1]), shown, named, threshold)
    if test in (JENSEN_SHANNON, PSI) and distinct[0] > FEW_BINNED:
        return _verdict(_binned(u, v, test == PSI), shown, named, threshold)
    keys, ref, cur = counted or _counts_of(u, v)
    return _counted(keys, ref, cur, shown, named, threshold)


def _numeric_block(ref: pd.DataFrame, cur: pd.DataFrame, columns: Sequence[str], dtype: type,
                   methods: Mapping[str, str | None], threshold: float | None,
                   ) -> dict[str, ColumnDrift | None]:
    """Verdicts for a block of numerical columns: the common case (every value present,
    more than 5 distinct, Evidently's Wasserstein) in one vectorised pass, the rest one by one."""
    u, v = _block(ref, columns, dtype), _block(cur, columns, dtype)
    n_u, n_v = np.isfinite(u).sum(axis=1), np.isfinite(v).sum(axis=1)
    d_u, d_v = _distinct(u, n_u), _distinct(v, n_v)
    out: dict[str, ColumnDrift | None] = {}
    fast = []
    for i, column in enumerate(columns):
        method = methods.get(column)
        if (empty := missing_verdict(int(n_u[i]), int(n_v[i]))) is not None:
            out[column] = empty
        elif (n_u[i] == u.shape[1] and n_v[i] == v.shape[1] and n_u[i] > SMALL_REFERENCE
              and max(d_u[i], d_v[i]) > FEW_VALUES and method in (None, "wasserstein")):
            fast.append(i)
        else:
            out[column] = _one_numeric(u[i, :n_u[i]], v[i, :n_v[i]],
                                       (int(d_u[i]), int(d_v[i])), method, threshold)
    if fast:
        every = len(fast) == len(columns)  # the usual case: no copy of the block
        scores = _normed_wasserstein(u if every else u[fast], v if every else v[fast])
        for i, score in zip(fast, scores, strict=True):
            method = methods.get(columns[i])
            out[columns[i]] = _verdict(float(score), method or WASSERSTEIN,
                                       WASSERSTEIN if method else None, threshold)
    return out


def _blocks(columns: Sequence[str], rows: int, itemsize: int) -> Iterator[list[str]]:
    step = max(1, BLOCK_BYTES // max(1, rows * itemsize))
    for start in range(0, len(columns), step):
        yield list(columns[start:start + step])


def column_drift(reference: pd.DataFrame, current: pd.DataFrame, numerical: Sequence[str],
                 categorical: Sequence[str], *, methods: Mapping[str, str | None] | None = None,
                 threshold: float | None = None) -> dict[str, ColumnDrift]:
    """Each column's drift verdict, as Evidently's ValueDrift would give it on these rows.

    `methods` names a column's stat test (None or absent: Evidently's choice by size);
    `threshold` replaces every method's default cut. A column whose named method is not one
    of ours is absent from the answer: measure it with Evidently."""
    methods = methods or {}
    out: dict[str, ColumnDrift | None] = {}
    rows = max(len(reference), len(current))
    exact = [c for c in numerical if _float32_exact(reference[c]) and _float32_exact(current[c])]
    wide = [c for c in numerical if c not in set(exact)]
    for columns, dtype in ((exact, np.float32), (wide, np.float64)):
        for block in _blocks(columns, rows, np.dtype(dtype).itemsize):
            out.update(_numeric_block(reference, current, block, dtype, methods, threshold))
    for column in categorical:
        out[column] = _categorical(reference[column], current[column], methods.get(column),
                                   threshold)
    return {c: v for c in [*numerical, *categorical] if (v := out.get(c)) is not None}
