"""The cohort simulator: a synthetic cohort run through the pathway's pure episode rules on a manual clock, its
behaviour read from a small YAML model (:mod:`.model`), one person at a time (:mod:`.driver`), the cohort over one
or two processes (:mod:`.run`), and its reports (:mod:`.report`, :mod:`.sankey`).

Pure: imports :mod:`engine.language`, :mod:`engine.plan`, :mod:`engine.episode` and :mod:`engine.measures` only;
time is passed in (``start``); no Prefect, no database, no clock.
"""

from engine.simulate.driver import Action, PersonResult, PersonScript
from engine.simulate.model import BehaviourModel, ModelError, default_model, parse_model
from engine.simulate.run import SimulationResult, simulate

__all__ = [
    "Action",
    "BehaviourModel",
    "ModelError",
    "PersonResult",
    "PersonScript",
    "SimulationResult",
    "default_model",
    "parse_model",
    "simulate",
]
