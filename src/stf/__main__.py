"""`python -m stf` is the `stf` console script."""

import sys

from stf.cli import main

sys.exit(main())
