"""Terminal views of the state: the same status object the `--json` flag prints."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from core.console import line, text


def _num(value: Any, fmt: str = ".3f") -> str:
    return "" if value is None else format(value, fmt)


MOVES = ("rollback", "auto-rollback", "canary")  # champion moves that no batch row shows
WIDE = [("rows", 5), ("drift\nshare", 5), ("label\ndrift", 5), ("champion\non batch", 8),
        ("decision", 0), ("challenger\n(gate)", 10), ("champion\n(gate)", 8),
        ("promoted", 8)]
MIN_DECISION = 26  # the decision cell's least width before the table folds its columns


def batch_table(state: dict[str, Any], title: str = "Batches", width: int | None = None
                ) -> Table:
    """One row per batch: drift, the champion on the batch, decision and gate; a rollback
    (or a canary promotion) is a row of its own where it happened, so the table says which
    version served which batch.

    `width` is the terminal's. When the figures' own columns would leave the decision less
    than MIN_DECISION columns, the table has three wider ones instead: the batch, its
    figures, and the decision with the gate and the promotion. The batch name is never cut.
    Every cell is a `Text`: a file name or a reason is never read as console markup."""
    longest = max((len(_name(b)) for b in state["batches"]), default=5)
    fixed = longest + sum(w for _, w in WIDE) + 3 * (len(WIDE) + 1) + 1
    narrow = width is not None and width - fixed < MIN_DECISION
    table = Table(title=title, header_style="bold")
    table.add_column("batch", no_wrap=True, min_width=longest)
    if narrow:
        table.add_column("figures", min_width=12, ratio=1)
        table.add_column("decision", min_width=16, ratio=2)
    for header, least in [] if narrow else WIDE:
        table.add_column(header, justify="left" if least == 0 else "right",
                         no_wrap=least > 0, min_width=least or MIN_DECISION)
    for kind, row in _rows(state):
        cells = _move_cells(row, narrow) if kind == "move" else _batch_cells(row, narrow)
        table.add_row(*cells)
    return table


def _name(batch: dict[str, Any]) -> str:
    return str(batch.get("file") or batch["id"])


def _rows(state: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The batches in landing order, with each champion move no batch row shows placed
    after the batch it was decided on (an automatic rollback names its batches), or else
    after the last batch recorded before it (a rollback by hand)."""
    batches = list(state["batches"])
    rows: list[tuple[str, dict[str, Any]]] = [("batch", b) for b in batches]
    index = {b["id"]: i for i, b in enumerate(batches)}
    placed: list[tuple[int, int, dict[str, Any]]] = []
    for n, move in enumerate(state.get("promotions") or []):
        if move.get("action") not in MOVES or "to" not in move:
            continue
        named = [index[b] for b in move.get("batches") or [] if b in index]
        if named:
            after = max(named)
        else:
            at = str(move.get("at") or "")
            after = max((i for i, b in enumerate(batches) if str(b.get("at") or "") <= at),
                        default=-1)
        placed.append((after, n, move))
    for after, _, move in sorted(placed, key=lambda p: (p[0], p[1]), reverse=True):
        rows.insert(after + 1, ("move", move))
    return rows


def _decided(b: dict[str, Any]) -> str:
    """The decision on an accepted batch in words, with what a person said about it."""
    decision = b.get("decision") or ""
    if b.get("registered_version") and not b.get("promoted_version"):
        decision += " (registered, not promoted)"
    elif b.get("no_champion"):
        decision += " (no champion)"
    elif decision == "retrain" and not b.get("registered_version"):
        decision += f" (gate: {(b.get('gate') or 'none').split(':')[0]})"
    if b.get("approval"):  # who said what and why, where the policy asked a person
        decision += f", {b['approval']}" + (f" by {b['approval_by']}" if b.get("approval_by")
                                             else "")
        if b.get("approval_reason"):
            decision += f": {b['approval_reason']}"
    return decision


def _batch_cells(b: dict[str, Any], narrow: bool) -> list[Text]:
    ok = b["status"] == "accepted"  # "held" and "quarantined" were not trained on
    decision = text(_decided(b)) if ok else _not_taken(b["status"])
    promoted = f"v{b['promoted_version']}" if b.get("promoted_version") else ""
    if narrow:
        if ok and b.get("challenger_metric") is not None:
            against = b.get("gate_champion_metric")
            decision.append(f"; gate {_num(b.get('challenger_metric'))}"
                            + (f" vs {_num(against)}" if against is not None else ""))
        if promoted:
            decision.append(f" -> {promoted}", style="bold")
        figures = [f"{_num(b.get('rows'), ',d')} rows" if b.get("rows") is not None else "",
                   f"drift {_num(b.get('drift_share'), '.2f')}"
                   if b.get("drift_share") is not None else "",
                   f"label {_num(b.get('label_score'))}" if b.get("label_score") is not None
                   else "",
                   f"champion {_num(b.get('champion_metric'))}"
                   if b.get("champion_metric") is not None else ""]
        return [text(_name(b)), text(", ".join(f for f in figures if f)), decision]
    return [text(_name(b)), text(_num(b.get("rows"), "d")),
            text(_num(b.get("drift_share"), ".2f")), text(_num(b.get("label_score"))),
            text(_num(b.get("champion_metric"))), decision,
            text(_num(b.get("challenger_metric"))), text(_num(b.get("gate_champion_metric"))),
            text(promoted)]


def _move_cells(move: dict[str, Any], narrow: bool) -> list[Text]:
    """A champion move as a row: `auto-rollback v3 -> v2 by greenlight: <why>`."""
    what = text((move["action"], "yellow"), f" v{move.get('from')} -> v{move['to']}",
                f" by {move['by']}" if move.get("by") else "",
                f": {move['reason']}" if move.get("reason") else "")
    where = text(("(champion moved)", "yellow"))
    if narrow:
        return [where, text(""), what]
    return [where, *[text("")] * 4, what, text(""), text(""), text(f"v{move['to']}")]


def _not_taken(status: str) -> Text:
    """A batch kept out of training: held (its labels wait for a person) is not quarantined."""
    return text(("held", "yellow")) if status == "held" else text(("quarantined", "red"))


def print_status(state: dict[str, Any], console: Console) -> None:
    """What `greenlight status` prints: the aliases, the probation, the table, the notes."""
    champion, previous = state["champion"], state["previous"]
    line(console, (state["model"], "bold"), "  champion: ",
         f"v{champion}" if champion else "none", "  previous: ",
         f"v{previous}" if previous else "none", f"  versions: {len(state['versions'])}",
         f"  store: {state['tracking_uri']}", soft_wrap=True)
    if challenger := state.get("challenger"):
        line(console, ("challenger", "bold"), f" v{challenger['version']}: "
             f"{challenger['state']}; gate {challenger.get('gate') or 'none'}",
             f"; forced {challenger['forced']}" if challenger.get("forced") else "",
             soft_wrap=True)
    if probation := state.get("probation"):
        line(console, ("on probation", "yellow"), f" v{probation['version']} since "
             f"{probation['since']}: judged against v{probation['previous']} for "
             f"{probation['left']}; rolled back by itself if it proves worse", soft_wrap=True)
    console.print(batch_table(state, width=console.width))
    print_quarantine(state, console)


def print_quarantine(state: dict[str, Any], console: Console) -> None:
    """Under the table, why each batch was not taken, in its own words: each reason once,
    naming its file once, and never read as console markup."""
    for b in state["batches"]:
        if b["status"] == "accepted" and b.get("no_champion") and not state.get("champion"):
            line(console, ("no champion", "red"), f" {_name(b)}: {b['no_champion']}",
                 soft_wrap=True)
        if b["status"] == "quarantined":
            line(console, ("quarantined", "red"), f" {_named(b, b.get('reason'))}",
                 soft_wrap=True)
        elif b["status"] == "held":
            line(console, ("held", "yellow"), f" {_named(b, b.get('held_reason'))}; to train "
                 f"on it: greenlight release {b['id'][:12]} --by NAME --reason TEXT",
                 soft_wrap=True)


NUMPY_REPR = re.compile(r"\bnp\.(?:float|int|uint|bool_|str_)\w*\(([^()]*)\)")  # np.float64(1.0)


def _named(b: dict[str, Any], reason: str | None) -> str:
    """`<file>: <reason>`, the file said once: a reason usually starts with it already."""
    name, said = _name(b), NUMPY_REPR.sub(r"\1", str(reason or "no reason recorded"))
    return said if said.startswith(f"{name}: ") else f"{name}: {said}"


# --- the cycle in one line: what `greenlight run` prints --------------------------------------

ARROW = "->"
MAX_FEATURES = 3  # the drifted features a line names; the rest is counted
MAX_BATCHES = 3  # batches a line names one by one; more are a range
MAX_REASON = 160  # characters of a reason on a terminal; the whole one is on stderr and in the JSON


def cycle_line(summary: dict[str, Any], dataset: str, terminal: bool = False) -> str:
    """What one cycle decided, in words, on one line: the batch, what monitoring saw, the
    decision, the gate and where the model went, then any quarantined or held batch.

    The JSON summary holds every number but says nothing in words; a person reading the
    console or a cron mail wants the decision. Pure: it reads only the summary `_cycle`
    returns (flows/cycle.py), so it can be tested on real summaries without running one.
    Only for a `terminal` are long reasons cut (at MAX_REASON): a file or a cron mail keeps
    them whole (a quarantine reason is at most about 200 characters, tasks/data/validate.py)."""
    if summary.get("taken"):  # another cycle of this dataset holds the batches
        return f"{dataset}: {summary['taken']}"
    cut = _cut if terminal else str
    notes = ([f"quarantined {cut(q)}" for q in summary.get("quarantined") or []]
             + list(summary.get("held") or []) + _probation(summary.get("probation"), cut))
    if not summary.get("decision"):
        head = f"{dataset}: nothing new" + (" to decide on" if notes else "")
        return "; ".join([head, *notes])
    chain = [_evidence(summary), *_decision(summary)]
    return "; ".join([f"{_batches(summary, dataset)}: {f' {ARROW} '.join(chain)}", *notes])


def _probation(said: dict[str, Any] | None, cut: Callable[[str], str] = str) -> list[str]:
    """The champion's probation in words, when the cycle judged one."""
    if not said:
        return []
    v, prev = said["version"], said["previous"]
    if said["action"] == "rollback" and said.get("refused"):
        return [f"v{v} failed probation but was not rolled back: {cut(said['refused'])}"]
    if said["action"] == "rollback":
        return [f"v{v} ROLLED BACK to v{prev} on probation: {cut(said['reason'])}"]
    if said["action"] == "baked":
        return [f"v{v} baked (held through probation)"]
    if said.get("replaced_by"):  # this cycle promoted another: it is not on probation now
        return [f"v{v} replaced by v{said['replaced_by']} before it baked"]
    return [f"v{v} on probation for {said['left']}"]


def _cut(reason: str) -> str:
    """A quarantine reason lists every failed check; the line keeps its start (the file and
    the first problems), since the warning above it and the JSON summary hold all of it."""
    return reason if len(reason) <= MAX_REASON else reason[:MAX_REASON - 1].rstrip() + "…"


def _batches(summary: dict[str, Any], dataset: str) -> str:
    """The batches by file name without extension (`2026-W07`); a forced run on nothing new
    names the dataset instead."""
    batches = summary.get("batches") or []
    files = summary.get("files") or [None] * len(batches)
    names = [_stem(f or b[:12]) for b, f in zip(batches, files, strict=True)]
    if not names:
        return dataset
    if len(names) > MAX_BATCHES:
        return f"{names[0]}..{names[-1]} ({len(names)} batches)"
    return ", ".join(names)


def _stem(name: str) -> str:
    """`2026-W07.csv` -> `2026-W07`: the extension says nothing about the batch."""
    return name.rsplit(".", 1)[0] if "." in name else name


def _evidence(summary: dict[str, Any]) -> str:
    """What monitoring saw: the largest drift share with the drifted features, the largest
    decay, and labels that arrived late; or why the batches could not be judged."""
    monitored = summary.get("monitored") or []
    fresh = [m for m in monitored if not m.get("late_labels")]
    judged = [m for m in fresh if not m.get("not_judged")]
    parts: list[str] = []
    if fresh and not judged:
        parts.append(f"not judged ({fresh[0]['not_judged']})")
    shares = [m["drift_share"] for m in judged if m.get("drift_share") is not None]
    if shares:
        # in monitoring's order, each once across the batches
        features = list(dict.fromkeys(f for m in judged for f in m.get("drifted_features") or []))
        named = ", ".join(features[:MAX_FEATURES]) + (
            f" +{len(features) - MAX_FEATURES} more" if len(features) > MAX_FEATURES else "")
        parts.append(f"drift {max(shares):.2f}" + (f" ({named})" if named else ""))
    kinds = [k for k, flag in (("label", "label_drifted"), ("prediction", "prediction_drifted"),
                               ("adversarial", "adversarial_drifted"))
             if any(m.get(flag) for m in judged)]
    if kinds:
        parts.append(f"{'/'.join(kinds)} drift")
    decays = [m["decay"] for m in monitored if m.get("decay") is not None]
    if decays:
        parts.append(f"decay {max(decays):.3f}")
    # a segment that alone crosses a decay threshold (tasks/monitoring/segments.py)
    parts += list(dict.fromkeys(m["segment_note"] for m in monitored if m.get("segment_note")))
    late = [m for m in monitored if m.get("late_labels")]
    if late:
        parts.append(f"late labels for {len(late)} batch{'es' if len(late) > 1 else ''}")
    if summary["decision"] == "bootstrap":
        parts.append("no champion yet")
    elif "forced by the caller" in (summary.get("reasons") or []):
        parts.append("forced")
    return ", ".join(parts) or "nothing measured"


def _decision(summary: dict[str, Any]) -> list[str]:
    """The decision, then the gate and where the challenger went, as the arrow's steps."""
    decision = summary["decision"]
    if decision == "no action":
        return ["no action"]
    if not summary.get("verdict"):  # retrain advised, not done (policy monitor, a rollback)
        if (summary.get("probation") or {}).get("action") == "rollback":
            return [decision, "not retrained against the champion just rolled back"]
        return [decision, f"not retrained (policy {summary.get('policy') or 'monitor'})"]
    return [decision, _gate(summary), _where(summary)]


def _gate(summary: dict[str, Any]) -> str:
    """`gate clear +13.8% (CI +9.2..+18.9%)`; not enough evidence says so in words."""
    gate = summary.get("gate") or {}
    verdict = summary["verdict"]
    if verdict == "bootstrap":
        return "first model"
    if verdict == "insufficient":
        return f"gate: {gate.get('reason') or 'not enough evidence'}"
    gain, low, high = gate.get("gain"), gate.get("ci_low"), gate.get("ci_high")
    if gain is None:
        return f"gate {verdict}"
    ci = f" (CI {low * 100:+.1f}..{high:+.1%})" if low is not None and high is not None else ""
    return f"gate {verdict} {gain:+.1%}{ci}{_gate_why(verdict, str(gate.get('reason') or ''))}"


def _gate_why(verdict: str, reason: str) -> str:
    """The two verdicts whose figures alone would mislead say why in words: a refresh on a
    window too small to prove a gain, and a challenger refused on the champion's history
    although it gained on the newest rows (poisoned labels look like that)."""
    if verdict == "fail" and reason.startswith("fail: history:"):
        return ", but the champion is proven better on the rows it was judged on"
    if verdict == "refresh" and "small window (" in reason:
        rows = reason.split("small window (", 1)[1].split(")", 1)[0]
        return f", a small window ({rows}): too few to prove a gain"
    return ""


def _where(summary: dict[str, Any]) -> str:
    """Where the challenger went: promoted, put to a person and what they said, shadowed,
    refused (the champion moved), or not promoted and the champion kept."""
    version = summary.get("registered_version")
    champion = summary.get("champion_version")
    kept = f"v{champion} stays @champion" if champion else "no champion"
    if summary.get("approval"):
        by = f" by {summary['approval_by']}" if summary.get("approval_by") else ""
        said = {"approved": f"approved{by} {ARROW} v{version} @champion",
                "rejected": f"rejected{by}, {kept}",
                "timed out": f"approval timed out, {kept}"}.get(
            summary["approval"], f"{summary['approval']}{by}")
        if summary.get("promotion_refused") and summary["approval"] != "approved":
            said = f"approved{by}, not promoted: {summary['promotion_refused']}"
        return f"v{version} put to the approver {ARROW} {said}"
    if summary.get("promoted_version"):
        return f"v{summary['promoted_version']} @champion"
    if summary.get("promotion_refused"):
        return f"v{version} registered, not promoted: {summary['promotion_refused']}"
    if summary.get("route") == "challenger" and version:
        return f"v{version} @challenger (shadow)"
    if version:
        return f"v{version} registered, not promoted, {kept}"
    return f"not promoted, {kept}"
