"""``python -m tuner.cli``: the same as the ``podium`` console script."""

import sys

from tuner.cli.app import main

sys.exit(main())
