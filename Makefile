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

# The annotator's browser tests drive Debian's chromium through chromedriver. Installed here when missing (as root
# or with password-less sudo); when neither works those tests skip and say why.
test: install
	@if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then as_root=env; elif sudo -n true 2>/dev/null; then as_root="sudo -n env"; fi; \
	  if [ -n "$$as_root" ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing chromium and chromium-driver for the annotator's browser tests"; \
	    install="$$as_root DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends"; \
	    $$install chromium chromium-driver >/dev/null 2>&1 \
	      || { $$as_root apt-get update -q >/dev/null 2>&1 && $$install chromium chromium-driver >/dev/null 2>&1; } \
	      || true; \
	  fi; \
	fi
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest
