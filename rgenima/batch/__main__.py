"""``python -m rgenima.batch SPEC.json``: one batch combination in a worker process (jobs > 1)."""

import sys

from rgenima.batch.combination import _worker_main

if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m rgenima.batch SPEC.json (internal: one batch combination)", file=sys.stderr)
        sys.exit(2)
    sys.exit(_worker_main(sys.argv[1]))
