"""Terminal views of the state: the same status object the `--json` flag prints."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _num(value: Any, fmt: str = ".3f") -> str:
    return "" if value is None else format(value, fmt)


def batch_table(state: dict[str, Any], title: str = "Batches") -> Table:
    """One row per batch: validation, drift, the champion on the batch, decision and gate."""
    table = Table(title=title, header_style="bold")
    for col, justify in [("batch", "left"), ("rows", "right"), ("valid", "center"),
                         ("drift share", "right"), ("label drift", "right"),
                         ("champion on batch", "right"), ("decision", "left"),
                         ("challenger (gate)", "right"), ("champion (gate)", "right"),
                         ("promoted", "right")]:
        table.add_column(col, justify=justify)
    for b in state["batches"]:
        ok = b["status"] == "accepted"  # "held" and "quarantined" were not trained on
        decision = b.get("decision") or ""
        if ok and b.get("registered_version") and not b.get("promoted_version"):
            decision += " (registered, not promoted)"
        elif ok and b.get("no_champion"):
            decision += " (no champion)"
        elif ok and decision == "retrain" and not b.get("registered_version"):
            decision += f" (gate: {(b.get('gate') or 'none').split(':')[0]})"
        if ok and b.get("approval"):  # who said what, where the policy asked a person
            decision += f", {b['approval']}" + (f" by {b['approval_by']}"
                                                 if b.get("approval_by") else "")
        valid = "[red]no[/]" if b["status"] == "quarantined" else "[green]yes[/]"
        table.add_row(
            b["file"], _num(b.get("rows"), "d"), valid,
            _num(b.get("drift_share"), ".2f"), _num(b.get("label_score")),
            _num(b.get("champion_metric")),
            decision if ok else _not_taken(b["status"]),
            _num(b.get("challenger_metric")), _num(b.get("gate_champion_metric")),
            f"v{b['promoted_version']}" if b.get("promoted_version") else "",
        )
    return table


def _not_taken(status: str) -> str:
    """A batch kept out of training: held (its labels wait for a person) is not quarantined."""
    return "[yellow]held[/]" if status == "held" else "[red]quarantined[/]"


def print_status(state: dict[str, Any], console: Console) -> None:
    champion, previous = state["champion"], state["previous"]
    console.print(f"[bold]{state['model']}[/]  champion: "
                  f"{'v' + str(champion) if champion else 'none'}  previous: "
                  f"{'v' + str(previous) if previous else 'none'}  versions: "
                  f"{len(state['versions'])}  store: {state['tracking_uri']}")
    if probation := state.get("probation"):
        console.print(f"[yellow]on probation[/] v{probation['version']} since "
                      f"{probation['since']}: judged against v{probation['previous']} for "
                      f"{probation['left']}; rolled back by itself if it proves worse",
                      highlight=False)
    console.print(batch_table(state))
    print_quarantine(state, console)


def print_quarantine(state: dict[str, Any], console: Console) -> None:
    for b in state["batches"]:
        if b["status"] == "accepted" and b.get("no_champion") and not state.get("champion"):
            # why the data gave no first champion yet: text, never console markup
            console.print(f"[red]no champion[/] {escape(b['file'] or b['id'])}: "
                          f"{escape(b['no_champion'])}", highlight=False)
        if b["status"] == "quarantined":
            console.print(f"[red]quarantined[/] {b['reason']}", highlight=False)
        elif b["status"] == "held":
            console.print(f"[yellow]held[/] {b['file']}: {b.get('held_reason')}; to train on "
                          f"it: greenlight release {b['id'][:12]} --by NAME --reason TEXT",
                          highlight=False)


# --- the cycle in one line: what `greenlight run` prints --------------------------------------

ARROW = "->"
MAX_FEATURES = 3  # the drifted features a line names; the rest is counted
MAX_BATCHES = 3  # batches a line names one by one; more are a range
MAX_REASON = 160  # characters of a quarantine reason; the whole one is on stderr and in the JSON


def cycle_line(summary: dict[str, Any], dataset: str) -> str:
    """What one cycle decided, in words, on one line: the batch, what monitoring saw, the
    decision, the gate and where the model went, then any quarantined or held batch.

    The JSON summary holds every number but says nothing in words; a person reading the
    console or a cron mail wants the decision. Pure: it reads only the summary `_cycle`
    returns (flows/cycle.py), so it can be tested on real summaries without running one."""
    if summary.get("taken"):  # another cycle of this dataset holds the batches
        return f"{dataset}: {summary['taken']}"
    notes = ([f"quarantined {_cut(q)}" for q in summary.get("quarantined") or []]
             + list(summary.get("held") or []) + _probation(summary.get("probation")))
    if not summary.get("decision"):
        head = f"{dataset}: nothing new" + (" to decide on" if notes else "")
        return "; ".join([head, *notes])
    chain = [_evidence(summary), *_decision(summary)]
    return "; ".join([f"{_batches(summary, dataset)}: {f' {ARROW} '.join(chain)}", *notes])


def _probation(said: dict[str, Any] | None) -> list[str]:
    """The champion's probation in words, when the cycle judged one."""
    if not said:
        return []
    v, prev = said["version"], said["previous"]
    if said["action"] == "rollback" and said.get("refused"):
        return [f"v{v} failed probation but was not rolled back: {_cut(said['refused'])}"]
    if said["action"] == "rollback":
        return [f"v{v} ROLLED BACK to v{prev} on probation: {_cut(said['reason'])}"]
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
    return f"gate {verdict} {gain:+.1%}{ci}"


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
