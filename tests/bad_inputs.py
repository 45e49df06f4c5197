"""The bad-input corpus: malformed batches cut from the synthetic stream, written as files.

Each case is a file a real upstream could drop in `landing/`, with what greenlight must do
with it: quarantine it with a reason that contains `expect`, or accept it after tidying
(`accepted`). The corpus is generated, not kept as files, so it follows the suite and the
stream; tests write it into a landing dir with `write_corpus`.
"""

from __future__ import annotations

import gzip
import io
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.data.ingest import sha256
from tasks.data.replay import synthetic_batch

ROWS = 300  # small bad files keep the corpus cycle fast; size is not what they test
BASE_INDEX = 2  # a stable week of the stream
MAX_BYTES = 32 << 20  # GREENLIGHT_MAX_BATCH_BYTES for the corpus run
OLD = time.time() - 3600  # mtime for corpus files: landed long ago, so settled


@dataclass(frozen=True)
class Case:
    name: str
    file: str
    build: Callable[[], bytes] | Callable[[Path], None]  # bytes, or writes the path itself
    expect: str  # substring of the quarantine reason, or "accepted"
    streamed: bool = False  # `build` writes the file itself (too big to hold as bytes)

    @property
    def quarantined(self) -> bool:
        return self.expect != "accepted"


def base(index: int = BASE_INDEX, rows: int = ROWS) -> pd.DataFrame:
    return synthetic_batch(index, rows=rows).frame


def csv(frame: pd.DataFrame, **kwargs) -> bytes:
    return frame.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S", **kwargs).encode()


def parquet(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def _with(**changes: Callable[[pd.DataFrame], pd.Series]) -> pd.DataFrame:
    frame = base()
    for column, make in changes.items():
        frame[column] = make(frame)
    return frame


def _some(frame: pd.DataFrame, column: str, value, rows: int = 10) -> pd.Series:
    out = frame[column].astype(object if isinstance(value, str) else frame[column].dtype).copy()
    out.iloc[:rows] = value
    return out


def _insert_lines(data: bytes, line: bytes, every: int = 50) -> bytes:
    lines = data.splitlines(keepends=True)
    for i in range(len(lines) - 1, 0, -every):
        lines.insert(i, line)
    return b"".join(lines)


def _gzip_bomb(path: Path) -> None:
    """Tiny on disk, 2 GiB when read: 2048 copies of one gzip member of 1 MiB of rows."""
    row = csv(base().head(1)).splitlines()[1] + b"\n"
    member = gzip.compress(row * ((1 << 20) // len(row)), compresslevel=9)
    with path.open("wb") as fh:
        fh.write(gzip.compress(csv(base().head(0))))
        for _ in range(2048):
            fh.write(member)


def _huge_csv(path: Path) -> None:
    """Valid rows, but 1.5 times the corpus run's size limit on disk."""
    block = csv(base(rows=3000)).split(b"\n", 1)[1]
    with path.open("wb") as fh:
        fh.write(csv(base().head(0)))
        while fh.tell() < MAX_BYTES * 3 // 2:
            fh.write(block)


def _corrupt_parquet_pages() -> bytes:
    """Footer intact, a data page overwritten: only reading the data finds it."""
    data = bytearray(parquet(base()))
    data[1000:1500] = b"\x00\xff" * 250
    return bytes(data)


def _tz_stamps() -> bytes:
    frame = base()
    frame["timestamp"] = frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%S+02:00")
    frame.loc[::2, "timestamp"] = frame.loc[::2, "timestamp"].str.replace("+02:00", "-05:00")
    return csv(frame)


def _long_garbage_line() -> bytes:
    """One line of 5,000 characters of garbage in a good file (an export that spilled a blob)."""
    lines = csv(base()).splitlines(keepends=True)
    lines.insert(100, b"garbage-" * 625 + b"\n")
    return b"".join(lines)


def _shuffled() -> bytes:
    return csv(base(4, rows=3000).sample(frac=1.0, random_state=0))


def _duplicated() -> bytes:
    frame = base(3, rows=3000)
    return csv(pd.concat([frame, frame.iloc[:200]]).sort_values("timestamp", kind="stable"))


CASES: list[Case] = [
    # columns
    Case("missing-column", "missing-column.csv",
         lambda: csv(base().drop(columns="income")), "column income is missing"),
    Case("extra-column", "extra-column.csv",
         lambda: csv(base().assign(coupon="X1")), "unexpected: coupon"),
    Case("renamed-column", "renamed-column.csv",
         lambda: csv(base().rename(columns={"price": "list_price"})), "column price is missing"),
    Case("duplicate-header", "duplicate-header.csv",
         lambda: csv(base()).replace(b",discount,", b",price,", 1), "unexpected: price.1"),
    # types and values
    Case("wrong-dtype-text-number", "wrong-dtype.csv",
         lambda: csv(_with(price=lambda f: f["price"].map(lambda v: f"{v:.2f} EUR"))),
         "expectations failed: expect_column_values_to_be_in_type_list(price)"),
    Case("wrong-dtype-parquet", "wrong-dtype.parquet",
         lambda: parquet(_with(age=lambda f: f["age"].astype(str))),
         "expectations failed: expect_column_values_to_be_in_type_list(age)"),
    Case("all-null-column", "all-null-column.csv",
         lambda: csv(_with(discount=lambda f: np.nan)),
         "expect_column_values_to_not_be_null(discount): 300 rows (100.0%)"),
    Case("null-target", "null-target.csv",
         lambda: csv(_with(converted=lambda f: f["converted"].astype(float).mask(
             f.index % 7 == 0))), "expect_column_values_to_not_be_null(converted)"),
    Case("out-of-range-age", "out-of-range.csv",
         lambda: csv(_with(age=lambda f: _some(f, "age", 150))),
         "expect_column_values_to_be_between(age): 10 rows"),
    Case("negative-price", "negative-price.parquet",
         lambda: parquet(_with(price=lambda f: -f["price"])),
         "expect_column_values_to_be_between(price)"),
    Case("unseen-category", "unseen-category.csv",
         lambda: csv(_with(market=lambda f: _some(f, "market", "east"))),
         "expect_column_values_to_be_in_set(market): 10 rows (3.3%), e.g. 'east'"),
    Case("label-outside-set", "label-outside-set.csv",
         lambda: csv(_with(converted=lambda f: _some(f, "converted", 2, rows=3))),
         "expect_column_values_to_be_in_set(converted)"),
    # empty
    Case("zero-byte", "zero-byte.csv", lambda: b"", "empty file (0 bytes)"),
    Case("blank-lines", "blank-lines.csv", lambda: b"\n\n\n", "no header and no rows"),
    Case("header-only", "header-only.csv", lambda: csv(base().head(0)),
         "expect_table_row_count_to_be_between: observed 0"),
    Case("zero-row-parquet", "zero-rows.parquet", lambda: parquet(base().head(0)),
         "expect_table_row_count_to_be_between: observed 0"),
    # broken files
    Case("truncated-parquet", "truncated.parquet",
         lambda: parquet(base())[: len(parquet(base())) // 2], "truncated or corrupt Parquet"),
    Case("not-parquet", "random-bytes.parquet", lambda: os.urandom(5000),
         "truncated or corrupt Parquet"),
    Case("corrupt-parquet-pages", "corrupt-pages.parquet", _corrupt_parquet_pages,
         "cannot be read as a table"),
    Case("truncated-csv", "truncated.csv",
         lambda: csv(base())[: len(csv(base())) // 2 + 7],
         "truncated: the last line has"),
    Case("truncated-gzip", "truncated.csv.gz",
         lambda: gzip.compress(csv(base()))[:-300], "truncated or corrupt gzip"),
    Case("garbage-lines-wide", "garbage-wide.csv",
         lambda: _insert_lines(csv(base()), b"<<<,garbage,,,,,,,,,,,,>>>\n"),
         "cannot be read as a table: Error tokenizing data"),
    Case("garbage-lines-short", "garbage-short.csv",
         lambda: _insert_lines(csv(base()), b"-- exported by tool v2 --\n"),
         "6 of 306 values in column timestamp are not timestamps, e.g. '-- exported by tool"),
    Case("garbage-line-long", "garbage-long.csv", _long_garbage_line,
         "1 of 301 values in column timestamp are not timestamps, e.g. 'garbage-garbage-"),
    Case("long-category-value", "long-category.csv",
         lambda: csv(_with(market=lambda f: _some(f, "market", "east-" * 1000))),
         "expect_column_values_to_be_in_set(market): 10 rows (3.3%), e.g. 'east-east-"),
    Case("non-utf8", "latin1.csv",
         lambda: csv(_with(market=lambda f: _some(f, "market", "m\u00fcnchen"))).replace(
             "m\u00fcnchen".encode(), "m\u00fcnchen".encode("latin-1")), "not UTF-8 text"),
    Case("binary-as-csv", "binary.csv", lambda: b"PK\x03\x04" + os.urandom(3000),
         "not UTF-8 text"),
    Case("semicolon-delimiter", "semicolon.csv", lambda: csv(base(), sep=";"),
         "looks ';'-delimited"),
    Case("tab-delimiter", "tabs.csv", lambda: csv(base(), sep="\t"), "looks '\\t'-delimited"),
    # time
    Case("future-timestamps", "future.csv",
         lambda: csv(_with(timestamp=lambda f: _some(f, "timestamp", pd.Timestamp("2031-01-01"),
                                                     rows=5))),
         "timestamps in the future (timestamp after 20"),
    Case("unparseable-timestamps", "bad-timestamps.csv",
         lambda: csv(_with(timestamp=lambda f: _some(f, "timestamp", "yesterday"))),
         "10 of 300 values in column timestamp are not timestamps, e.g. 'yesterday'"),
    Case("mixed-timezones", "mixed-tz.csv", _tz_stamps,
         "expectations failed: expect_column_values_to_be_in_type_list(timestamp)"),
    # size
    Case("gzip-bomb", "bomb.csv.gz", _gzip_bomb, "too large to read at once (over 32.0 MiB "
                                                  "uncompressed", streamed=True),
    Case("huge-csv", "huge.csv", _huge_csv, "too large to read at once (48.", streamed=True),
    # accepted after tidying: the raw file is kept, the lake gets sorted, unique rows
    Case("out-of-order-rows", "shuffled.csv", _shuffled, "accepted"),
    Case("duplicated-rows", "duplicated.csv", _duplicated, "accepted"),
]




def write_case(case: Case, landing: Path) -> Path:
    """Write a case into landing with an old mtime (so the scan need not wait for it)."""
    path = landing / case.file
    landing.mkdir(parents=True, exist_ok=True)
    if case.streamed:
        case.build(path)
    else:
        path.write_bytes(case.build())
    os.utime(path, (OLD, OLD))
    return path


def write_corpus(landing: Path) -> dict[str, str]:
    """Every case into landing; returns case name -> sha256 of the bytes written."""
    return {case.name: sha256(write_case(case, landing)) for case in CASES}
