"""``python -m numscale.inspect MODEL …`` (see :mod:`numscale.inspect.cli`)."""

import sys

from numscale.inspect.cli import main

sys.exit(main())
