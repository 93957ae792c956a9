#!/usr/bin/env bash
# Time `make book` on a fresh clone: the install (make venv), the first book (synthetic
# cohort, preparation, training, attributions, every notebook, the strict build), and a
# second `make book` that reuses the cached results. Targets: first book within 30
# minutes (install reported separately), second within 3 minutes.
#
# Usage: benchmarks/bench_book.sh [SOURCE_REPO] [OUT_JSON]
set -euo pipefail
src=${1:-$(git rev-parse --show-toplevel)}
out=${2:-$src/benchmarks/latest_book.json}
work=$(mktemp -d)
git clone -q "$src" "$work/rgenima"
cd "$work/rgenima"
stamp() { date +%s.%N; }
t0=$(stamp); make venv >"$work/venv.log" 2>&1; t1=$(stamp)
# GNU time's %M: peak resident memory (KiB) of the largest process of the tree.
/usr/bin/time -f %M -o "$work/rss1" make book >"$work/book1.log" 2>&1; t2=$(stamp)
/usr/bin/time -f %M -o "$work/rss2" make book >"$work/book2.log" 2>&1; t3=$(stamp)
cp runs/default/timings.json "$work/timings.json" 2>/dev/null || true
python3 - "$t0" "$t1" "$t2" "$t3" "$out" "$work" <<'PY'
import json, pathlib, sys
t0, t1, t2, t3 = map(float, sys.argv[1:5])
work = pathlib.Path(sys.argv[6])
figures = {"install_s": round(t1 - t0, 1), "first_book_s": round(t2 - t1, 1),
           "second_book_s": round(t3 - t2, 1),
           "first_book_peak_rss_mb": round(int((work / "rss1").read_text().split()[-1]) / 1024),
           "clone": str(work / "rgenima")}
timings = work / "timings.json"
if timings.is_file():
    figures["training_steps_s"] = json.loads(timings.read_text())
print(json.dumps(figures, indent=1))
open(sys.argv[5], "w").write(json.dumps(figures, indent=1) + "\n")
PY
