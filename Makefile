# The two commands a new machine needs: `make run` (gateway on the default model) and `make test`.
VENV ?= .venv
PYTEST_ARGS ?=

.PHONY: setup run test test-unit bench clean

setup:
	./scripts/setup.sh

run: setup
	$(VENV)/bin/lethe serve

test: setup
	./scripts/test.sh $(PYTEST_ARGS)

test-unit: setup
	./scripts/test.sh -m "not e2e" $(PYTEST_ARGS)

bench: setup
	$(VENV)/bin/python benchmarks/bench_gateway.py

clean:
	rm -rf $(VENV) .pytest_cache
