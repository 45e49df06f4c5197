"""A SQL table or query as a source: each cycle takes the rows newer than the watermark.

A batch is the time slice (watermark, newest time seen]. It is written as a Parquet file
with a deterministic name and handed to the normal intake, because that path already gives
a slice everything a landed file has: the content-hash id, the duplicate check, Great
Expectations, quarantine with a report, and raw bytes kept in archive/ or quarantine/.
A second path for frames would have to copy all of that, and drift from it.

The slice's bounds are written down before it is read (`pending`), and the watermark moves
only in `commit`, once the batch's decision is in the manifest. A crash in between makes
the next cycle read the same bounds again; the same rows give the same bytes, so the same
batch id, and a batch already decided is only committed.

Late rows (time at or before the watermark, inserted after their slice was read) are
counted from the rows the state knows lie below the watermark, reported once, and left in
the table: they are never read into a batch whose period has been judged.

The URL may hold credentials, in its userinfo or its query (`?password=`, `sslpassword`,
a token): it is shown only as `shown_url` renders it (SQLAlchemy's `hide_password=True`,
then core/secrets.py for the query), and they are scrubbed from any database error before
that is shown. A URL that does not parse is one line naming the setting and the key.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import pandas as pd

from core.files import replacing
from core.secrets import MASK, is_secret_param, mask_text, mask_url
from tasks.data import source_base
from tasks.data.home import Home
from tasks.data.ingest import LandedFile, Scan, sha256
from tasks.data.spec import DatasetSpec

log = logging.getLogger("greenlight.sources")
STAMP = "%Y%m%dT%H%M%S"


def _url(config: source_base.SqlConfig, where: str) -> Any:
    """The SQLAlchemy URL from `url_env` or `url`; a bad one is named, never echoed."""
    import os

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if bool(config.url) == bool(config.url_env):
        raise ValueError(f"{where}: give exactly one of url and url_env")
    if config.url_env and not os.environ.get(config.url_env):
        raise ValueError(f"{where}.url_env: environment variable {config.url_env} is not set")
    key = f"{where}.url_env ({config.url_env})" if config.url_env else f"{where}.url"
    try:
        return make_url(os.environ[config.url_env] if config.url_env else config.url)
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        why = (f" ({str(exc).split(': ', 1)[-1]} is not a port number)"
               if isinstance(exc, ValueError) and "int()" in str(exc) else "")
        raise ValueError(f"{key}: not a SQLAlchemy URL{why}; expected "
                         "dialect+driver://user:password@host:port/database") from None


def shown_url(url: Any) -> str:
    """How a SQLAlchemy URL is ever shown: the userinfo password and every secret query
    parameter (`password`, `sslpassword`, tokens) as `***`."""
    return mask_url(url.render_as_string(hide_password=True))


def secrets_of(url: Any) -> list[str]:
    """The credential values a SQLAlchemy URL holds (userinfo and query), longest first,
    to cut out of anything a driver says."""
    found = [str(url.password)] if url.password else []
    for name, value in url.query.items():
        if is_secret_param(name):
            found += [value] if isinstance(value, str) else list(value)
    return sorted({v for v in found if v}, key=len, reverse=True)


class SqlSource:
    """Time slices of one table or query (see the module docstring)."""

    def __init__(self, home: Home, spec: DatasetSpec, config: source_base.SqlConfig,
                 where: str) -> None:
        if bool(config.table) == bool(config.query):
            raise ValueError(f"{where}: give exactly one of table and query")
        self.home, self.spec, self.config = home, spec, config
        self.url = _url(config, where)
        self.time = config.time_column or spec.time_column
        self.label = f"{shown_url(self.url)} {config.table or 'query'}"
        self.state_path = home.root / "sources" / f"{spec.name}-sql.json"

    # --- state: watermark, rows known below it, the slice in flight -------------------
    def state(self) -> dict[str, Any]:
        """What the source has committed; empty before the first slice."""
        try:
            return json.loads(self.state_path.read_text())
        except FileNotFoundError:
            return {}

    def _save(self, state: dict[str, Any]) -> None:
        with replacing(self.state_path) as tmp:
            tmp.write_text(json.dumps(state, indent=2, default=str))

    # --- SQL ----------------------------------------------------------------------------
    def _from(self, engine: Any) -> str:
        """The FROM clause: the quoted table (schema.table allowed) or the query as a subquery."""
        if self.config.query:
            return f"({self.config.query.strip().rstrip(';')}) AS greenlight_src"
        quote = engine.dialect.identifier_preparer.quote
        return ".".join(quote(part) for part in self.config.table.split("."))

    def _scalar(self, conn: Any, engine: Any, what: str, where: str, **params: Any) -> Any:
        from sqlalchemy import text

        col = engine.dialect.identifier_preparer.quote(self.time)
        sql = f"SELECT {what.format(t=col)} FROM {self._from(engine)} WHERE {where.format(t=col)}"
        return conn.execute(text(sql), params).scalar()

    def _slice(self, conn: Any, engine: Any, lo: Any, hi: Any) -> pd.DataFrame:
        from sqlalchemy import text

        col = engine.dialect.identifier_preparer.quote(self.time)
        low = f"{col} > :lo AND " if lo is not None else ""
        sql = f"SELECT * FROM {self._from(engine)} WHERE {low}{col} <= :hi ORDER BY {col}"
        return pd.read_sql(text(sql), conn, params={"lo": lo, "hi": hi})

    def _scrubbed(self, exc: Exception) -> str:
        """The database's first line, with every credential of the URL cut out should a
        driver echo it (or the URL itself)."""
        line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        for secret in secrets_of(self.url):
            line = line.replace(secret, MASK)
        return mask_text(line)

    # --- the interface --------------------------------------------------------------------
    def take(self) -> Scan:
        """The next slice (or the one in flight again), and the late rows since last time.

        A database that cannot be reached is a warning and no batch: the watermark stays,
        and the next cycle tries again."""
        from sqlalchemy import create_engine
        from sqlalchemy.exc import SQLAlchemyError

        engine = create_engine(self.url)
        try:
            with engine.connect() as conn:
                return self._take(conn, engine)
        except SQLAlchemyError as exc:
            return Scan(notes=[f"sql source {self.label}: cannot read: {self._scrubbed(exc)}; "
                               "nothing taken, the watermark stays"])
        finally:
            engine.dispose()

    def _take(self, conn: Any, engine: Any) -> Scan:
        state, notes = self.state(), []
        mark = _when(state.get("watermark"))
        if mark is not None:
            below = int(self._scalar(conn, engine, "count(*)", "{t} <= :m", m=mark))
            late = below - int(state.get("rows_below", 0))
            if late > 0:
                notes.append(f"sql source {self.label}: {late:,} late row(s) with "
                             f"{self.time} at or before the watermark {mark.isoformat()}: "
                             "not taken into a batch (their period was judged already)")
                state.update(rows_below=below, late_rows=int(state.get("late_rows", 0)) + late)
        pending = state.get("pending")
        if pending and source_base.decided(self.home, pending.get("batch_id") or ""):
            state = self._advanced(state)  # decided before a crash kept it from committing
            pending = None
        if pending is None:
            hi = self._scalar(conn, engine, "max({t})",
                              "{t} > :m" if mark is not None else "1 = 1", m=mark)
            if hi is None:
                self._save(state)
                return Scan(notes=notes)
            pending = {"from": _iso(mark), "upto": _iso(hi)}
            state["pending"] = pending
            self._save(state)  # bounds first: a crash from here on re-reads this slice
        frame = self._slice(conn, engine, _when(pending["from"]), _when(pending["upto"]))
        landed = self._materialise(frame, pending)
        state["pending"] = {**pending, "batch_id": landed.batch_id, "rows": len(frame)}
        self._save(state)
        return Scan(ready=[landed], notes=notes)

    def _materialise(self, frame: pd.DataFrame, pending: dict[str, Any]) -> LandedFile:
        """The slice as Parquet under a name made of its bounds: same rows, same bytes."""
        lo = _when(pending["from"])
        name = (f"{self.spec.name}-sql-{lo.strftime(STAMP) if lo else 'start'}--"
                f"{_when(pending['upto']).strftime(STAMP)}.parquet")
        path = source_base.staging(self.home, self.spec.name, "sql") / name
        with replacing(path) as tmp:
            frame.to_parquet(tmp, index=False)
        return LandedFile(path, sha256(path), path.stat().st_size)

    def _advanced(self, state: dict[str, Any]) -> dict[str, Any]:
        """The watermark past the slice in flight, and its rows counted as below it (on top
        of those below the old watermark, late ones included: each is reported once)."""
        pending = state.pop("pending")
        state.update(watermark=pending["upto"], committed_batch=pending.get("batch_id"),
                     rows_below=int(state.get("rows_below", 0)) + int(pending.get("rows", 0)))
        return state

    def commit(self, landed: LandedFile) -> None:
        """Move the watermark, only if this is the slice in flight and the manifest holds its
        decision."""
        state = self.state()
        pending = state.get("pending") or {}
        if pending.get("batch_id") != landed.batch_id or not source_base.decided(
                self.home, landed.batch_id):
            return
        self._save(self._advanced(state))
        log.info("sql source %s: watermark now %s", self.label, state["watermark"])


def _iso(value: Any) -> str | None:
    """A time as ISO text for the state file (None stays None)."""
    return None if value is None else pd.Timestamp(value).isoformat()


def _when(value: str | None) -> datetime | None:
    """ISO text back to a datetime to bind as a query parameter."""
    return None if value is None else pd.Timestamp(value).to_pydatetime()
