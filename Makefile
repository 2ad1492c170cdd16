# Two commands for a newcomer: `make demo` and `make test`.
# Both create or refresh ./.venv when pyproject.toml, setup.py or the C extension changed, then run.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed
BIN := $(VENV)/bin
export OMP_NUM_THREADS ?= 1

.PHONY: demo test lint install clean-venv

$(STAMP): pyproject.toml setup.py src/ornet/localization/_ctree.c
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ornet demo --out $${DEMO_OUT:-demo_out} $${DEMO_ARGS:-}

test: $(STAMP)
	TORCH_HOME=$$(mktemp -d) $(BIN)/python -m pytest -n 2 -q $${PYTEST_ARGS:-}

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples

clean-venv:
	rm -rf $(VENV)
