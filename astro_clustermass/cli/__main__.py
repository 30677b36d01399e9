"""``python -m astro_clustermass.cli``: the same as ``astro-clustermass``."""

import sys

from . import main

sys.exit(main())
