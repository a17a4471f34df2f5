"""The flow of a cohort through the stages, as a Sankey diagram drawn in plain SVG (no script, no network).

Pathways loop (a relapse steps back up), so a node is a stage *at a position in the episode's path*: column 1 holds
every episode's first stay, column 2 the second, and so on; a link counts the episodes that went from one stay to
the next. A node's count is the number of stays at that position in that stage.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from engine.episode.history import EpisodeHistory

__all__ = ["Flows", "flows", "sankey_svg"]

#: Paths longer than this are cut (the rest is summed in the last column).
MAX_COLUMNS = 8


@dataclass(frozen=True)
class Flows:
    """``nodes[(column, stage)]``: stays at that position; ``links[(column, from, to)]``: moves from ``column`` to the
    next."""

    nodes: dict[tuple[int, str], int]
    links: dict[tuple[int, str, str], int]


def flows(histories: Sequence[EpisodeHistory], max_columns: int = MAX_COLUMNS) -> Flows:
    """Count the stays and the moves between them, position by position."""
    nodes: Counter[tuple[int, str]] = Counter()
    links: Counter[tuple[int, str, str]] = Counter()
    for history in histories:
        path = [s.stage for s in history.stays][:max_columns]
        for column, stage in enumerate(path):
            nodes[(column, stage)] += 1
            if column + 1 < len(path):
                links[(column, stage, path[column + 1])] += 1
    return Flows(dict(nodes), dict(links))


_PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")


def sankey_svg(f: Flows, stage_order: Sequence[str], *, width: int = 1100, height: int = 520) -> str:
    """The flows as an SVG element: columns left to right, stages in ``stage_order`` top to bottom."""
    if not f.nodes:
        return (
            '<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40"><text x="4" y="24">no stays</text></svg>'
        )
    columns = max(c for c, _ in f.nodes) + 1
    colour = {s: _PALETTE[n % len(_PALETTE)] for n, s in enumerate(stage_order)}
    order = {s: n for n, s in enumerate(stage_order)}
    total = max(sum(v for (c, _), v in f.nodes.items() if c == col) for col in range(columns))
    gap, node_w, margin = 14, 14, 40
    scale = (height - 2 * margin - gap * len(stage_order)) / max(total, 1)
    step = (width - 2 * margin - 140) / max(columns - 1, 1)
    place: dict[tuple[int, str], tuple[float, float]] = {}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
             f'font-size="11" role="img" aria-label="stage flows">']  # fmt: skip
    for col in range(columns):
        y = float(margin)
        for stage in sorted((s for c, s in f.nodes if c == col), key=lambda s: order.get(s, 99)):
            h = max(f.nodes[(col, stage)] * scale, 1.5)
            place[(col, stage)] = (margin + col * step, y)
            y += h + gap
    out_used: dict[tuple[int, str], float] = defaultdict(float)
    in_used: dict[tuple[int, str], float] = defaultdict(float)
    for (col, a, b), n in sorted(
        f.links.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 99), order.get(kv[0][2], 99))
    ):
        (x0, y0), (x1, y1) = place[(col, a)], place[(col + 1, b)]
        w = n * scale
        ya = y0 + out_used[(col, a)] + w / 2
        yb = y1 + in_used[(col + 1, b)] + w / 2
        out_used[(col, a)] += w
        in_used[(col + 1, b)] += w
        xa, xb = x0 + node_w, x1
        mid = (xa + xb) / 2
        parts.append(
            f'<path d="M{xa:.1f},{ya:.1f} C{mid:.1f},{ya:.1f} {mid:.1f},{yb:.1f} {xb:.1f},{yb:.1f}" fill="none" '
            f'stroke="{colour.get(b, "#999")}" stroke-opacity="0.35" stroke-width="{max(w, 1):.1f}">'
            f"<title>{escape(a)} → {escape(b)}: {n}</title></path>"
        )
    for (col, stage), (x, y) in place.items():
        n = f.nodes[(col, stage)]
        h = max(n * scale, 1.5)
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{node_w}" height="{h:.1f}" fill="{colour.get(stage, "#999")}">'
            f"<title>{escape(stage)} (stay {col + 1}): {n}</title></rect>"
            f'<text x="{x + node_w + 3:.1f}" y="{y + min(h / 2, 12) + 4:.1f}">{escape(stage)} {n}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
