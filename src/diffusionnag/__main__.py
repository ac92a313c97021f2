"""``python -m diffusionnag ...``: the same as the ``diffusionnag`` command."""

import sys

from diffusionnag.cli import main

if __name__ == "__main__":
    sys.exit(main())
