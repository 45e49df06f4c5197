"""What sits in `landing/`, and which of it may be read: the rules for what is not a plain
file there (symlinks, FIFOs, directories, devices).

- **A symlink** is read through only to a regular file under a directory the operator
  allows: `landing/` itself, plus those listed in `GREENLIGHT_LANDING_LINK_DIRS` (paths
  separated by `:`). Any other link (to `/etc/passwd`, to a 0600 file elsewhere, to
  `/proc/self/environ`, to a directory, dangling) is refused with one line and quarantined
  as the link itself, without reading a byte behind it. The allowance is an environment
  setting of the machine, not a flow parameter: whoever may start a run from the Prefect
  UI must not be able to widen what the process reads.
- **A FIFO, a socket or a device** named like a batch is never opened (opening a FIFO
  blocks until a writer comes): it is reported once and left where it is.
- **A directory** named like a batch (`n10_2026-W40.csv/` holding `part-*.csv`: the layout
  Spark writes) is refused, reported once and left where it is: a batch is one file, whose
  bytes are hashed into its id and kept in `archive/` or `quarantine/` as they were; parts
  may still be being written (a `_SUCCESS` marker is one writer's convention), and CSV
  parts each carry a header. Land the parts as one file (`coalesce(1)`, or concatenate
  them with one header).

"Once" is kept in `sources/landing-refused.json` of the state dir: what was reported, by
name and by what it was (kind, inode, mtime, link target). An entry that goes away is
forgotten, so the same name refused again later is reported again.

Standard library only (and core): the idle check (tasks/data/idle.py) asks here too.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from core.files import replacing

# What landing and the labels feed take; anything else there is left alone.
SUFFIXES = (".csv", ".csv.gz", ".parquet")
LINK_DIRS_ENV = "GREENLIGHT_LANDING_LINK_DIRS"
RECORD = Path("sources") / "landing-refused.json"
_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISDIR, "a directory"))


def named_like_a_batch(path: Path) -> bool:
    """A name a cycle takes: a table suffix, not hidden, not `~` (still being written)."""
    return not path.name.startswith((".", "~")) and path.name.endswith(SUFFIXES)


def kind(mode: int) -> str:
    """What a file that is not regular is, in words."""
    return next((word for test, word in _KINDS if test(mode)), "not a regular file")


def allowed_dirs(landing: Path) -> list[Path]:
    """The directories a symlink in `landing` may point into: landing itself, and those of
    GREENLIGHT_LANDING_LINK_DIRS (`:`-separated; `~` expanded), all fully resolved."""
    extra = [p for p in os.environ.get(LINK_DIRS_ENV, "").split(os.pathsep) if p.strip()]
    return [Path(os.path.realpath(Path(p.strip()).expanduser())) for p in [str(landing), *extra]]


def link_refusal(link: Path) -> str | None:
    """Why the symlink `link` (in landing) is not read through, in one line; None when it
    leads to a regular file under an allowed directory. Nothing behind it is opened."""
    target = os.readlink(link)
    real = Path(os.path.realpath(link))
    shown = repr(target) if len(target) <= 120 else repr(target[:117] + "...")
    try:
        st = os.stat(real)
    except OSError:
        return f"{link.name}: a symlink to {shown}, which does not exist; no bytes to keep " \
               "(land the file itself)"
    if not any(real.is_relative_to(d) for d in allowed_dirs(link.parent)):
        return (f"{link.name}: a symlink to {shown}, outside landing and the directories of "
                f"{LINK_DIRS_ENV}; not read (land the file itself, or allow its directory)")
    if not stat.S_ISREG(st.st_mode):
        return f"{link.name}: a symlink to {shown}, which is {kind(st.st_mode)}, not a " \
               "regular file; no bytes to keep (land the file itself)"
    return None


def _directory_reason(path: Path) -> str:
    try:
        parts = sorted(p.name for p in path.iterdir() if p.name.endswith(SUFFIXES)
                       and not p.name.startswith((".", "_")))
    except OSError:
        parts = []
    held = f" holding {len(parts)} part file(s), the layout Spark writes" if parts else ""
    return (f"{path.name}: a directory{held}, not a file; a batch is one file (write it "
            "with coalesce(1), or concatenate the parts with one header); left in landing")


def refused(landing: Path) -> dict[str, tuple[str, str]]:
    """Entries of `landing` named like a batch that are neither regular files nor
    symlinks: name -> (what it is, for the record; the one-line reason). Only `lstat` is
    called on them: a FIFO is never opened."""
    out: dict[str, tuple[str, str]] = {}
    try:
        entries = list(os.scandir(landing))
    except OSError:
        return out
    for entry in entries:
        path = Path(entry.path)
        if not named_like_a_batch(path):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
            continue
        what = kind(st.st_mode)
        reason = (_directory_reason(path) if stat.S_ISDIR(st.st_mode) else
                  f"{path.name}: {what}, not a regular file; never opened, left in landing "
                  "(land the file itself)")
        out[path.name] = (f"{what}:{st.st_ino}:{st.st_mtime_ns}", reason)
    return out


def _record(landing: Path) -> Path:
    return landing.parent / RECORD


def _reported(landing: Path) -> dict[str, str]:
    try:
        data = json.loads(_record(landing).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def unreported(landing: Path) -> list[str]:
    """The reasons for refused entries not reported yet (or changed since), without
    recording anything: the idle check's question."""
    seen = _reported(landing)
    return [reason for name, (sig, reason) in sorted(refused(landing).items())
            if seen.get(name) != sig]


def report_once(landing: Path) -> list[str]:
    """The reasons to report now (each refused entry once), and the record updated to what
    is refused now (entries gone are forgotten)."""
    now = refused(landing)
    seen = _reported(landing)
    lines = [reason for name, (sig, reason) in sorted(now.items()) if seen.get(name) != sig]
    current = {name: sig for name, (sig, _) in now.items()}
    if current != seen and (current or _record(landing).exists()):
        with replacing(_record(landing)) as tmp:
            tmp.write_text(json.dumps(current, indent=2, sort_keys=True))
    return lines
