"""``python -m engine``: the same as the ``carepath`` command."""

import sys

from engine.cli.main import main

sys.exit(main())
