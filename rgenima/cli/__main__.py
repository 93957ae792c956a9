"""``python -m rgenima.cli``, as ``torchrun -m rgenima.cli train ...`` needs."""

import sys

from rgenima.cli.entry import main

sys.exit(main())
