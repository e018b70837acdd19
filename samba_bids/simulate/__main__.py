"""``python -m samba_bids.simulate``: the same as ``samba-bids-simulate``."""

import sys

from .cli import main

sys.exit(main())
