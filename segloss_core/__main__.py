"""``python -m segloss_core``: see :mod:`segloss_core.cli`."""

import sys

from .cli import main

sys.exit(main())
