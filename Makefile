# Two commands on a fresh machine (Python >= 3.10 with pip):
#   make demo   installs syn2real into .venv and runs the built-in demo (no download needed)
#   make test   installs (if needed) and runs the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The torch build the project's machines hold on disk (any other is a multi-GB download). pyproject.toml states
# the range the package supports; constraints.txt pins every package to what the suite last passed with.
TORCH := torch==2.14.1 torchvision==0.29.1

.PHONY: install demo test lock
install: $(VENV)/.installed

# Reinstall when the dependencies or their pins change.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

# Refresh constraints.txt: resolve pyproject.toml's ranges afresh in a scratch venv (with the local torch) and
# pin what pip chose. Run `make test` after it, and commit constraints.txt with the change that needed it.
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install --quiet --upgrade pip
	.venv-lock/bin/python -m pip install --quiet $(TORCH) -e '.[test]'
	{ echo "# Exact versions \`make test\` last passed with; used by \`make install\` (pip -c). Refresh: make lock"; \
	  .venv-lock/bin/python -m pip freeze --all --exclude-editable; } > constraints.txt
	rm -rf .venv-lock

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
