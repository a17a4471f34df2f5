"""``python -m engine``: the same as the ``carepath`` command."""

import sys

from engine.cli import main

sys.exit(main())
