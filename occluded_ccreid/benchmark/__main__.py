"""`python -m occluded_ccreid.benchmark ...`: see `cli`."""

import sys

from .cli import main

sys.exit(main())
