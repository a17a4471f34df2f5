"""Quality measures from episode histories: follow-up after high-intensity care, initiation and engagement, MOUD
continuity, reentry, handoff loops, escalations and discrepancies, stays against expected durations.

Pure: reads only :class:`~engine.episode.history.EpisodeHistory` values and compiled plans (so a cohort from the
store and the same cohort simulated give one answer); imports :mod:`engine.language`, :mod:`engine.plan` and
:mod:`engine.episode` only; no Prefect, no SQL, no clock (the data's horizon is the latest moment in it). The
definitions sit next to their code (:mod:`.care`, :mod:`.moud`, :mod:`.operations`); :mod:`.compute` runs them per
stratum with small-cell suppression; :mod:`.render` and :mod:`.html` print the report.
"""

from engine.measures.compute import DEFINITIONS, MIN_CELL, compute_measures
from engine.measures.html import render_html
from engine.measures.render import render_csv, render_json, render_table
from engine.measures.report import ALL, Definition, MeasureError, MeasureReport, Period, Result, Stratum

__all__ = [
    "ALL",
    "DEFINITIONS",
    "MIN_CELL",
    "Definition",
    "MeasureError",
    "MeasureReport",
    "Period",
    "Result",
    "Stratum",
    "compute_measures",
    "render_csv",
    "render_html",
    "render_json",
    "render_table",
]
