# Two commands on a fresh machine (Python >= 3.10 with pip):
#   make demo   installs syn2real into .venv and runs the built-in demo (no download needed)
#   make test   installs (if needed) and runs the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test
install: $(VENV)/.installed

# Reinstall when the dependencies change. torch/torchvision are pinned in pyproject.toml.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: install
	HF_HUB_OFFLINE=1 $(BIN)/syn2real demo

test: install
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest
