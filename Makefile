# The two commands a new machine needs: `make run` (gateway on the default model) and `make test`.
# `make lint`: ruff, mypy and the import contracts (CI runs it before the tests).
VENV ?= .venv
PYTEST_ARGS ?=

.PHONY: setup run test test-unit lint bench clean

setup:
	./scripts/setup.sh

run: setup
	$(VENV)/bin/lethe serve

test: setup
	./scripts/test.sh $(PYTEST_ARGS)

test-unit: setup
	./scripts/test.sh -m "not e2e" $(PYTEST_ARGS)

lint: setup
	./scripts/lint.sh

bench: setup
	$(VENV)/bin/python benchmarks/bench_gateway.py

clean:
	rm -rf $(VENV) .pytest_cache
