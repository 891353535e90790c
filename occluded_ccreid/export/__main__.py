"""`python -m occluded_ccreid.export BUILD_OR_REPO OUT ...`: see `cli`."""

import sys

from .cli import main

sys.exit(main())
