# Each target bootstraps .venv itself on a fresh machine (Python 3.10+ with venv).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= workdirs/demo
SIM8 := XLA_FLAGS=--xla_force_host_platform_device_count=8
# test processes (pytest-xdist, one test file each at a time): the tests are mostly single-threaded compilation
TEST_WORKERS ?= 2
# requirements.lock pins the versions CI tested, resolved for Python 3.11; other Pythons resolve pyproject's bounds
LOCK := $(shell $(PYTHON) -c 'import sys; print("-c requirements.lock" if sys.version_info[:2] == (3, 11) else "")')

.PHONY: demo test bench clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(LOCK) -e '.[test]'
	# tinysoundfont's wheel declares pyaudio (needs PortAudio headers) only for live playback, which audiojax never uses
	$(PY) -m pip install --quiet --no-deps 'tinysoundfont>=0.3'
	# PyTorch only serves the tests of reading .pt checkpoints: take a CPU wheel if pip's find-links hold one
	# (a "+cpu" build is never on PyPI, so this never starts a multi-GB download); otherwise those tests skip
	$(PY) -m pip install --quiet 'torch==2.13.0+cpu' || echo "no local CPU torch wheel: .pt conversion tests will skip"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m audiojax data build gm_instruments/demo
	$(SIM8) $(PY) -m audiojax train --config experiments/ced/demo.py --workdir $(DEMO_DIR)
	$(PY) -m audiojax data export gm_instruments/demo --split test --index 0 --out $(DEMO_DIR)/heldout_clip.wav
	$(PY) -m audiojax tag $(DEMO_DIR)/heldout_clip.wav --checkpoint $(DEMO_DIR) --top-k 5
	@echo "training curve: $(DEMO_DIR)/training_curve.png"

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile tests

bench: $(STAMP)
	$(PY) -m audiojax bench ced
	$(PY) -m audiojax bench prompt-asr
	$(PY) -m audiojax bench attention
	$(PY) -m audiojax bench codec
	$(PY) -m audiojax bench valle

clean:
	rm -rf $(VENV) data workdirs
