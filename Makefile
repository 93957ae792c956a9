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

.PHONY: venv test book synth clean-book

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

# The synthetic cohort is rewritten when the generator or its SNP resource changes.
data/synthetic/truth.json: rgenima/data/synthetic.py rgenima/resources/panel_snps_grch37.tsv | venv
	rm -rf data/synthetic
	$(VENV)/bin/rgenima synth --out data/synthetic --n-subjects $(N_SUBJECTS) --seed $(SEED)

synth: data/synthetic/truth.json

book: venv data/synthetic/truth.json
	$(VENV)/bin/rgenima run --manifest $(MANIFEST)

clean-book:
	rm -rf _build book/generated
