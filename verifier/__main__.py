"""``python -m verifier``: the same as the ``catalog-verifier`` command."""

from __future__ import annotations

import sys

from verifier.cli import main

sys.exit(main())
