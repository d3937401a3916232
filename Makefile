# The two commands a new machine needs: `make run` (gateway on the default model) and `make test`.
# `make lint`: ruff, mypy and the import contracts (CI runs it before the tests).
VENV ?= .venv
PYTEST_ARGS ?=

.PHONY: setup run test test-unit lint bench clean image image-cpu image-gpu k8s
# `make image`: the CPU and GPU images (docker, podman or buildah, whichever is installed).
BUILDER ?= $(shell command -v docker || command -v podman || echo buildah)
IMAGE ?= lethe
VERSION ?= 0.1.0

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

image: image-cpu image-gpu

image-cpu:
	$(BUILDER) build -f docker/Dockerfile.cpu -t $(IMAGE):$(VERSION)-cpu .

image-gpu:
	$(BUILDER) build -f docker/Dockerfile.gpu -t $(IMAGE):$(VERSION)-gpu .

# The generated files of k8s/ (serveConfigV2 of each overlay, PrometheusRule, PodMonitor, dashboard).
k8s: setup
	$(VENV)/bin/python scripts/render_k8s.py

clean:
	rm -rf $(VENV) .pytest_cache
