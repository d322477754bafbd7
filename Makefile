# The two set-up commands: `make run` and `make test`. Both build .venv on a fresh machine.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TORCH  := torch==2.13.0

.PHONY: run sync test bench lint clean-venv dvc.yaml

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first and pinned: an unpinned or ranged request would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[dev,export]'
	touch $(STAMP)

# Snakemake runs the jobs; the sync step then records their outputs in dvc.lock
# (`dvc commit -f --no-relink`), so that `dvc status` and a second `snakemake -n` both have
# nothing to do.
run: $(STAMP) dvc.yaml
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --workflow-profile workflow/profiles/default \
		--cores $$(nproc) --rerun-incomplete results/report.md
	PATH="$(CURDIR)/$(BIN):$$PATH" sh workflow/sync.sh results/report.md

# After either tool ran (Snakemake, or `dvc repro` / `dvc exp run`): the record-keeping step of
# the other, so that `snakemake -n` and `dvc status` both have nothing to do (workflow/sync.sh).
sync: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" sh workflow/sync.sh results/report.md

test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

bench: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/run_all.py

# dvc.yaml is generated from the pipeline description (src/stf/pipeline.py) and params.yaml;
# always remade (it takes a second), since any source file's imports may change its deps.
dvc.yaml: $(STAMP)
	$(BIN)/stf dvc-yaml --params params.yaml --out dvc.yaml

# ruff (lint + format check, settings in pyproject.toml) on the whole tree, then Snakemake's linter.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake --lint

clean-venv:
	rm -rf $(VENV)
