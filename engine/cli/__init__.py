"""The ``carepath`` command: argparse front-ends only, each calling a use case of :mod:`engine.app`.

Nothing imports this package but the console script and ``python -m engine``.
"""

from engine.cli.entry import main

__all__ = ["main"]
