"""A model card per registered version: its MLflow description, short markdown that the
MLflow UI renders on the version page.

The card says why the version was trained (the batches and the alarms), on which data
(window, rows, classes), with which recipe (or the ensemble's members and weights), what
the gate found (verdict and interval, the slice guard), who approved it and why, its
moves as champion and its probation. It is written at registration and rewritten from the
same sources after every move, decision and probation note, so it is never edited by
hand and never disagrees with them: the training run's tags, params and metrics (the full
text, where the version's own tags are cut short to keep the version list readable) and
the promotion log.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from core import names
from registry import history
from registry.store import Registry

log = logging.getLogger("greenlight.registry")
PROBATION_NOTES = ("probation", "baked")
MEMBERS = 5  # an ensemble's heaviest members named on the card
# What the challenger does differently from the champion it was gated against, in words
# (tasks/gate/explain.py, passed in by the caller: the registry reads no model), kept on
# the training run as the card's other sources are.
WHY_TAG = "greenlight.why"
WHY_CHARS = 1500


def _pct(value: Any) -> str:
    try:
        return f"{float(value):+.2%}"
    except (TypeError, ValueError):
        return "n/a"


def _why(tags: dict[str, str]) -> list[str]:
    batches = [b for b in tags.get(names.BATCH_IDS_TAG, "").split(",") if b]
    reasons = tags.get(names.REASONS_TAG, "").split(" | ")
    lines = [f"- **Why trained:** {tags.get(names.DECISION_TAG, 'n/a')} on {len(batches)} "
             f"batch(es) ({', '.join(b[:8] for b in batches[:6])}"
             f"{', ...' if len(batches) > 6 else ''})"]
    lines += [f"  - {r}" for r in reasons[:6] if r]
    return lines


def _recipe(tags: dict[str, str]) -> list[str]:
    members = json.loads(tags.get(names.ENSEMBLE_TAG) or "{}")
    if members:
        ranked = sorted(members.items(), key=lambda m: -float(m[1]))
        parts = "; ".join(f"{name} ({float(w):.2f})" for name, w in ranked[:MEMBERS])
        more = (f"; and {len(ranked) - MEMBERS} more (weights {float(ranked[-1][1]):.2f} to "
                f"{float(ranked[MEMBERS][1]):.2f}; all in the tag `{names.ENSEMBLE_TAG}`)"
                if len(ranked) > MEMBERS else "")
        head = f"- **Recipe:** ensemble of {len(members)} members: {parts}{more}"
    else:
        head = f"- **Recipe:** {tags.get(names.RECIPE_TAG, 'n/a')}"
    why = (tags.get(names.RECIPE_REASON_TAG) or "").split("; ensemble")[0]
    return [head] + ([f"  - best single recipe: {why[:300]}"] if why else [])


def _gate(tags: dict[str, str]) -> list[str]:
    low, _, high = tags.get(names.GATE_CI_TAG, "None..None").partition("..")
    verdict = tags.get(names.GATE_TAG, "n/a")
    reason = tags.get(names.GATE_REASON_TAG, "")
    slices = ("a slice degraded: see the gate's reason" if "slice" in reason.lower()
              and verdict == "fail" else "no slice degraded" if verdict not in
              ("bootstrap", "n/a") else "not judged (no champion to compare with)")
    return [f"- **Gate:** {verdict}, gain {_pct(tags.get(names.GATE_GAIN_TAG))} "
            f"(95% interval {_pct(low)} .. {_pct(high)}) over the champion it was judged "
            f"against (v{tags.get(names.CHAMPION_SEEN_TAG, 'none')})",
            f"  - {reason[:400]}", f"- **Slice guard:** {slices}"]


def _explained(tags: dict[str, str]) -> list[str]:
    """The card's "what changed" line, when the caller explained the challenger."""
    why = tags.get(WHY_TAG)
    return [f"- **What changed vs the champion (gate window):** {why[:WHY_CHARS]}"] if why else []


def _approval(version_tags: dict[str, str], notes: list[dict[str, Any]],
              policy: str) -> str:
    said = [r for r in notes if r.get("action") in ("approved", "rejected", "timed out")]
    if not said:
        return f"- **Approval:** not asked (policy {policy})"
    last = said[-1]
    return (f"- **Approval:** {last['action']} by {last.get('by') or 'nobody'} at "
            f"{last.get('at')}: {last.get('reason') or 'no reason given'}")


def _life(version: int, log_: list[dict[str, Any]]) -> list[str]:
    lines = []
    for r in history.moves(log_):
        if version in (r.get("to"), r.get("from")):
            verb = "became champion" if r.get("to") == version else "left the champion"
            other = r.get("from") if r.get("to") == version else r.get("to")
            lines.append(f"  - {r.get('at')}: {verb} ({history.kind(r, log_)}, "
                         f"{'from' if r.get('to') == version else 'to'} v{other}) by "
                         f"{r.get('by')}: {str(r.get('reason', ''))[:200]}")
    notes = [r for r in log_ if r.get("version") == version
             and r.get("action") in PROBATION_NOTES]
    judged = sum(len(r.get("batches") or []) for r in notes if r["action"] == "probation")
    baked = [r for r in notes if r["action"] == "baked"]
    rolled = [r for r in history.moves(log_) if r.get("from") == version
              and r.get("action") == "auto-rollback"]
    probation = ("baked at " + str(baked[-1].get("at")) if baked else
                 f"rolled back by itself at {rolled[-1].get('at')}: {rolled[-1].get('reason')}"
                 if rolled else _on_probation(version, log_, judged))
    return ["- **Champion history:**", *(lines or ["  - never champion"]),
            f"- **Probation:** {probation}"]


def _on_probation(version: int, log_: list[dict[str, Any]], judged: int) -> str:
    """Probation in words for a version neither baked nor rolled back by itself."""
    came = [r for r in history.moves(log_) if r.get("to") == version]
    if not came:
        return "not champion yet"
    last = came[-1]
    left = [r for r in history.moves(log_) if r.get("from") == version]
    if left and log_.index(left[-1]) > log_.index(last):
        return (f"ended when it left the champion ({history.kind(left[-1], log_)} by "
                f"{left[-1].get('by')} at {left[-1].get('at')})")
    if last.get("from") is None:
        return "none: a first champion has nothing to be judged against"
    if last.get("action") not in ("promote", "canary") or last.get(history.NAMED):
        return f"none ({history.kind(last, log_)})"
    return f"since {last.get('at')}, {judged} batch(es) judged so far"


def _data(params: dict[str, str]) -> str:
    """The data window: the rows learned from, and the gate's rows (refit: learned too)."""
    gate = (f"{params.get('gate_rows', 'n/a')} rows ({params.get('gate_start', 'n/a')} to "
            f"{params.get('gate_end', 'n/a')})")
    if params.get("refit") == "True":
        return (f"- **Data:** gated on {gate}, then refit on {params.get('refit_rows')} rows "
                f"from {params.get('train_start', 'n/a')} to "
                f"{params.get('trained_until', 'n/a')}, the gate's rows included")
    return (f"- **Data:** trained on {params.get('train_rows', 'n/a')} rows from "
            f"{params.get('train_start', 'n/a')} to {params.get('trained_until', 'n/a')}; "
            f"gated on {gate}, newer")


def render(reg: Registry, version: int) -> str:
    """The card of one version, from its training run and the promotion log."""
    mv = reg.client.get_model_version(reg.model_name, str(version))
    run = reg.client.get_run(mv.run_id).data if mv.run_id else None
    tags = {**(run.tags if run else {}), **(mv.tags or {})}
    if run:  # the run keeps the full text; the version's own tags are cut short
        tags.update({k: v for k, v in run.tags.items() if k.startswith("greenlight.")})
    params = run.params if run else {}
    log_ = history.read(reg.promotions_path, reg.model_name)
    notes = [r for r in log_ if r.get("version") == version]
    classes = params.get("classes") or "n/a (regression)"
    return "\n".join([
        f"**{reg.model_name} v{version}**, registered by greenlight "
        f"(policy {tags.get(names.POLICY_TAG, 'n/a')})", "",
        *_why(tags),
        _data(params),
        *_recipe(tags), *_gate(tags), *_explained(tags),
        _approval(tags, notes, tags.get(names.POLICY_TAG, "n/a")),
        *_life(version, log_),
        f"- **Limits:** {params.get('refit_rows') or params.get('train_rows', 'n/a')} "
        f"training rows; classes "
        f"{classes}; rows from {params.get('train_start', 'n/a')} to "
        f"{params.get('gate_end', 'n/a')} only: newer data is what monitoring judges",
    ])


def write(reg: Registry, version: int) -> str:
    """Render a version's card and set it as its MLflow description; returns it."""
    card = render(reg, version)
    reg.client.update_model_version(reg.model_name, str(version), description=card)
    return card


def explain(reg: Registry, version: int, text: str) -> None:
    """Keep `text` (what the challenger does differently, said by the caller) on the
    version's training run, where the card reads it, and rewrite the card. Best effort,
    as `refresh`: the version is registered whatever happens here."""
    try:
        run_id = reg.client.get_model_version(reg.model_name, str(version)).run_id
        if run_id:
            reg.client.set_tag(run_id, WHY_TAG, text[:WHY_CHARS])
    except Exception as exc:  # noqa: BLE001 (see the docstring)
        log.warning("explanation of v%s not kept: %s", version, exc)
        return
    refresh(reg, version)


def refresh(reg: Registry, *versions: int | None) -> None:
    """Rewrite the cards of the versions a move or a note touched. Never fails the caller:
    the move is done and recorded; a card a failure left stale is rewritten next time."""
    for version in dict.fromkeys(v for v in versions if v is not None):
        try:
            write(reg, int(version))
        except Exception as exc:  # noqa: BLE001 (see the docstring)
            log.warning("model card of v%s not updated: %s", version, exc)
