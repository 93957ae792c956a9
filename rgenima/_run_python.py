"""Run a Python statement as a module: lets torchrun launch library code in tests
(``torchrun ... -m rgenima._run_python "<statement>"``)."""

import sys

exec(sys.argv[1])  # noqa: S102 - the statement comes from our own test-suite
