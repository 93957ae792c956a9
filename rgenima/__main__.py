import sys

from rgenima.cli import main

sys.exit(main())
