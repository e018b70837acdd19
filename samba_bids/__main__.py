import sys

from .cli.run import entry

sys.exit(entry())
