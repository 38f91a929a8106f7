# FlowLens: `make dev` runs the whole system locally, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: image dev test fuzz check lint format bundle clean checkov tf-fmt

# A .venv whose Python is missing, broken, older than 3.11 or without pip (made before the
# right Python, or python3-venv, was installed) is made again rather than reused.
NEW_ENOUGH := import sys; sys.exit(sys.version_info < (3, 11))

$(STAMP): pyproject.toml
	@$(BIN)/python -c 'import pip; $(NEW_ENOUGH)' 2>/dev/null || { \
	  $(PYTHON) -c '$(NEW_ENOUGH)' 2>/dev/null || { \
	    echo "FlowLens needs Python 3.11 or newer with venv; $(PYTHON) is not (try: make $(or $(MAKECMDGOALS),dev) PYTHON=python3.11)" >&2; \
	    exit 1; }; \
	  rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

dev: $(STAMP)
	$(BIN)/flowlens dev $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The fuzz and fault tests with a long budget (a few minutes; `make test` runs them briefly).
fuzz: $(STAMP)
	FLOWLENS_FUZZ_EXAMPLES=$${FLOWLENS_FUZZ_EXAMPLES:-300} \
	FLOWLENS_FAULT_DELIVERIES=$${FLOWLENS_FAULT_DELIVERIES:-3000} \
	$(BIN)/python -m pytest -m fuzz --timeout 1800 tests/fuzz $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

check: lint $(STAMP) tf-fmt checkov
	$(BIN)/mypy shared/flowlens
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# checkov lives in its own venv: it pins packaging and ships its own `hcl2` module, both of
# which clash with the project's dev tools (python-hcl2).
CHECKOV_VENV := build/tools/checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov

$(CHECKOV):
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet 'checkov>=3.2,<4'

# IaC scan of infra/terraform and the API Dockerfile (config and skip policy: .checkov.yaml).
checkov: $(CHECKOV)
	$(CHECKOV) --config-file .checkov.yaml

# terraform fmt needs no providers or network; skipped where terraform is not installed.
tf-fmt:
	@if command -v terraform >/dev/null 2>&1; then \
		terraform fmt -check -recursive -diff infra/terraform; \
	else echo "tf-fmt: terraform not installed, skipping terraform fmt -check"; fi

# Each function's deploy folder (main.py, requirements.txt, the flowlens wheel) under build/bundles/.
bundle: $(STAMP)
	$(BIN)/python tools/bundle.py

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache

# The API image (needs a Docker engine; the suite builds it too when one is available).
image:
	docker build -f services/api/Dockerfile -t flowlens-api:dev .
