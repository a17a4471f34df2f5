"""A plan as a Mermaid flowchart (``carepath graph``): stages, the moves between them, handoffs and escalations.

Each stage is a node (name and ASAM level; terminal stages are rounded and shaded). A move is an arrow labelled
with its event and guard. A move that schedules work (a handoff, authorization or medication reconciliation)
runs through a node of its own that lists each deadline with its escalation ladder, written as absolute offsets
from the move (``accepted by 24h: 24h→care-coordinator, 48h→supervisor``); a handoff's fallback is a dashed
arrow. Every label is quoted and escaped, so designer text cannot break the diagram.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.language.durations import show_duration
from engine.language.guards import describe

if TYPE_CHECKING:
    from engine.plan.model import Plan, StagePlan, TransitionPlan, WorkPlan

__all__ = ["mermaid", "node_id"]

_ESCAPES = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "|": "#124;", "\n": " "}
_SHORT = {"handoff-step": "", "authorization": "authorization", "reconcile": "reconcile medications"}


def node_id(stage: str) -> str:
    """Mermaid node id of a stage: prefixed so ids like ``end`` cannot clash with Mermaid keywords."""
    return "s_" + stage.replace("-", "_")


def mermaid(plan: Plan) -> str:
    """The plan as a ``flowchart LR`` Mermaid diagram."""
    lines = ["flowchart LR", '  enrolled(("enrolled"))']
    for stage in plan.stages.values():
        lines.append(f"  {_stage_node(stage)}")
    lines.append(f"  enrolled --> {node_id(plan.initial_stage)}")
    for t in plan.transitions:
        lines += _transition(t)
    lines += [
        "  classDef terminal fill:#eeeeee,stroke:#555555,stroke-width:2px",
        "  classDef move fill:#fff8e1,stroke:#b58900",
    ]
    terminal = [node_id(s.id) for s in plan.stages.values() if s.terminal]
    if terminal:
        lines.append(f"  class {','.join(terminal)} terminal")
    moves = [f"t{t.index}" for t in plan.transitions if t.work or t.handoff]
    if moves:
        lines.append(f"  class {','.join(moves)} move")
    return "\n".join(lines)


def _label(*lines: str) -> str:
    return '"' + "<br/>".join("".join(_ESCAPES.get(c, c) for c in line) for line in lines if line) + '"'


def _stage_node(stage: StagePlan) -> str:
    required = f"requires {', '.join(stage.requires_medication)}" if stage.requires_medication else ""
    label = _label(stage.name, f"ASAM {stage.level}" if stage.level else "", required)
    return f"{node_id(stage.id)}([{label}])" if stage.terminal else f"{node_id(stage.id)}[{label}]"


def _transition(t: TransitionPlan) -> list[str]:
    trigger = t.trigger().removeprefix("on ") + (f" [{describe(t.guard)}]" if t.guard is not None else "")
    target = node_id(t.target)
    if not (t.work or t.handoff):
        return [f"  {node_id(s)} -->|{_label(trigger)}| {target}" for s in t.sources]
    move = f"t{t.index}"
    heading = ""
    if t.handoff:
        h = t.handoff
        heading = f"handoff: {h.program} ({h.mode}" + (", lasts the episode)" if h.lasts == "episode" else ")")
    meds = [f"switch: {c.stop or '-'} → {c.start or '-'}" for c in t.medication_changes]
    meds += [f"requires {', '.join(t.requires_medication)}"] if t.requires_medication else []
    body = [heading, *(_work_line(w) for w in t.work), *meds]
    out = [f"  {move}{{{{{_label(*body)}}}}}" if t.handoff else f"  {move}[/{_label(*body)}/]"]
    out += [f"  {node_id(s)} -->|{_label(trigger)}| {move}" for s in t.sources]
    out.append(f"  {move} --> {target}")
    if t.handoff and t.handoff.fallback:
        out.append(f"  {move} -.->|{_label('declined')}| {node_id(t.handoff.fallback)}")
    return out


def _work_line(w: WorkPlan) -> str:
    name = _SHORT.get(w.kind, w.kind) or w.key.rsplit(".", 1)[-1]
    ladder = ", ".join(f"{show_duration(r.at)}→{r.to}" for r in w.ladder)
    return f"{name} by {show_duration(w.due)}" + (f": {ladder}" if ladder else "")
