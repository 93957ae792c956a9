import sys

from rgenima.cli.entry import main

sys.exit(main())
