"""``python -m vledger``: the same as the ``vledger`` console script."""

import sys

from vledger.cli import main

sys.exit(main())
