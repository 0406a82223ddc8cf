"""`python -m backend ...` is the `mlaface` command (the Blender add-on starts its worker this way)."""

import sys

from .serve.cli import main

sys.exit(main())
