"""``python -m lightsr`` runs the CLI."""

import sys

from lightsr.cli import main

sys.exit(main())
