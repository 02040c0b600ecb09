"""``python -m pointnet_kit`` (and ``torchrun -m pointnet_kit``) runs the CLI."""

import sys

from .cli.main import main

sys.exit(main())
