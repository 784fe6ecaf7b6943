"""``python -m genas <command> ...``: the same as the ``genas`` console command."""

import sys

from genas.commands import main

sys.exit(main())
