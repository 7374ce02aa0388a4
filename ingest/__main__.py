"""`python -m ingest` runs the command line."""

import sys

from ingest.cli import main

sys.exit(main())
