"""Registering pathways: validate every file of a folder and pin each (id, version) in the store."""

from __future__ import annotations

from pathlib import Path

from engine.app.context import App
from engine.errors import CarepathError, PathwayError
from engine.language.model import PathwaySpec

__all__ = ["register_pathways"]


def register_pathways(app: App, folder: str | Path) -> list[PathwaySpec]:
    """Validate every pathway in ``folder`` and pin each (id, version); stop on any error, registering nothing
    more (a version already registered with other content is refused: raise ``version``)."""
    from engine.language.loader import discover, load_pathway

    paths, problems = discover([str(folder)])
    loaded, errors = [], list(problems)
    for path in paths:
        result = load_pathway(path)
        errors += [d for d in result.diagnostics if d.severity == "error"]
        if result.ok and result.spec is not None and result.source_text is not None:
            loaded.append((result.spec, result.source_text))
    if errors:
        raise PathwayError(errors)
    for spec, text in loaded:
        try:
            app.service.register_pathway(spec, text)
        except CarepathError:
            raise
        except Exception:  # serving processes started together: another pinned it first (a duplicate key)
            app.service.register_pathway(spec, text)  # found now; other content is still refused
    return [spec for spec, _text in loaded]
