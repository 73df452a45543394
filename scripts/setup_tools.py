"""Prepare the tools the tests and the pipeline need, from what pip installed into the venv.

Idempotent and quick on a second run. Each tool has its own step; later steps add to this file.
"""

from __future__ import annotations

import sys


def main() -> int:
    return 0


if __name__ == "__main__":
    sys.exit(main())
