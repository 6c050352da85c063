"""``python -m scfbench`` runs the SCFbench command line."""

import sys

from scfbench.cli import main

sys.exit(main())
