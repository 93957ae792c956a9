# rgenima: the two user-facing commands are `make book` and `make test`.
# Both create .venv and install into it on a fresh clone (torch first, so that pip
# takes the local CPU build rather than downloading a CUDA one).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.rgenima-installed
MANIFEST ?= data_manifest.yaml
N_SUBJECTS ?= 400
SEED ?= 0
# External validation cohort (manifests/synthetic_external.yaml): another seed,
# 2,000 subjects, identifiers disjoint from the training cohort's.
EXTERNAL_N_SUBJECTS ?= 2000
EXTERNAL_SEED ?= 1
ifeq ($(MANIFEST),data_manifest.yaml)
EXTERNAL_MANIFEST ?= manifests/synthetic_external.yaml
endif

.PHONY: venv test lint book synth clean-book publish

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m ipykernel install --sys-prefix --name rgenima --display-name "rgenima (Python 3.11)" >/dev/null
	touch $(STAMP)

test: venv
	$(PY) -m pytest -q

# Lint, format and type check (CI runs them before the tests).
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# The synthetic cohort is rewritten when the generator or its SNP resource changes.
SYNTH_SOURCES := $(wildcard rgenima/data/synthetic/*.py) rgenima/resources/panel_snps_grch37.tsv

data/synthetic/truth.json: $(SYNTH_SOURCES) | venv
	rm -rf data/synthetic
	$(VENV)/bin/rgenima synth --out data/synthetic --n-subjects $(N_SUBJECTS) --seed $(SEED)

data/synthetic_external/truth.json: $(SYNTH_SOURCES) | venv
	rm -rf data/synthetic_external
	$(VENV)/bin/rgenima synth --out data/synthetic_external --n-subjects $(EXTERNAL_N_SUBJECTS) \
	    --seed $(EXTERNAL_SEED) --first-subject 10000

synth: data/synthetic/truth.json data/synthetic_external/truth.json

book: venv data/synthetic/truth.json data/synthetic_external/truth.json
	$(VENV)/bin/rgenima run --manifest $(MANIFEST) $(if $(EXTERNAL_MANIFEST),-p external_manifest $(EXTERNAL_MANIFEST))

# Push the built book (_build/html) to the gh-pages branch of the remote `origin`
# (GitHub Pages). A restricted cohort's book is refused unless its privacy scan is clean.
publish: venv
	$(VENV)/bin/rgenima publish _build/html --manifest $(MANIFEST)

clean-book:
	rm -rf _build book/generated
