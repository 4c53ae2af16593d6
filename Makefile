# Two commands a newcomer types: `make demo` (the main job) and `make test`.
# Each creates .venv and installs the package with its dependencies on first use.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# torch 2.x. These two builds lie on the reference machine's disk (x86_64, Python 3.11);
# elsewhere set TORCH_PKGS, e.g. `make test TORCH_PKGS="torch==2.9.1 torchvision==0.24.1"`.
TORCH_PKGS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: install install-dev test test-faults test-all lint format typecheck demo demo-scarce labels-demo ablate bench clean

# The main job needs the package and its runtime dependencies; the tests add the dev extras
# (pytest, ruff, mypy, the reference evaluator, scikit-image's photos): ~27 s more on the reference
# machine, not spent by `make demo` (D120).
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(TORCH_PKGS)
	$(PY) -m pip install --quiet --disable-pip-version-check -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

lint: install-dev
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

typecheck: install-dev
	$(VENV)/bin/mypy

# The test command of the README and of CI: lint, types, then every test not marked slow or faults.
test: lint typecheck
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m "not slow and not faults"

# A whole run killed at 19 points and resumed, and a run whose disk fills (~5 min; CI runs it too).
test-faults: install-dev
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m faults

test-all: install-dev
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

format: install-dev
	$(VENV)/bin/ruff format src tests benchmarks
	$(VENV)/bin/ruff check --fix src tests benchmarks

# The main job: the demo benchmark generated, then split → prototypes → teacher → calibrate →
# control → pseudo-label check → student → evaluation → report.html on 2 CPU cores (12.5 min
# after install, 14.2 min from a fresh clone, 2026-12-02; docs/results.md); run again to resume.
demo: install
	$(VENV)/bin/tailteacher demo

# The same pipeline where labels are scarce: demo with a quarter of its training images labeled,
# every class keeping one (synth --labeled-fraction 0.25, D116), teacher 600 steps, student and
# control 480 (26.0 min on 2 idle cores with .venv built, 2026-12-02; docs/results.md).
demo-scarce: install
	test -f runs/data/demo_f25/val.json -a -f runs/data/demo_f25/unlabeled.json || $(VENV)/bin/tailteacher synth --preset demo --seed 0 --labeled-fraction 0.25 --out runs/data/demo_f25 --overwrite
	$(VENV)/bin/tailteacher run scarce

# Eq. 1–5 alone on a synthetic classification problem, ~5 s.
labels-demo: install
	$(VENV)/bin/tailteacher labels-demo

# The ablation (the paper's Table 1 and Fig. 2) where labels are scarce, 3 seeds: what
# docs/results_ablation*.json hold (CPU: ≈ 470 one-core minutes for the three seeds, ≈ 4 h on 2 cores;
# split it over processes with --only-seed and --rows, docs/results.md).
# `tailteacher ablate bench --seeds 3` runs the same rows on the larger bench preset (D127).
ablate: install
	test -f runs/data/demo_f25/val.json -a -f runs/data/demo_f25/unlabeled.json || $(VENV)/bin/tailteacher synth --preset demo --seed 0 --labeled-fraction 0.25 --out runs/data/demo_f25 --overwrite
	$(VENV)/bin/tailteacher ablate scarce --seeds 3

bench: install-dev
	$(PY) benchmarks/bench_labels.py
	$(PY) benchmarks/bench_eval.py
	HF_HUB_OFFLINE=1 $(PY) benchmarks/bench_model.py
	HF_HUB_OFFLINE=1 $(PY) benchmarks/bench_roi_align.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache .hypothesis
