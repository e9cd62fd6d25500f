# chargewire: `make demo` runs the service on the embedded SQLite default; `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test lint typecheck pytest test-services screenshots bench-ingest bench-webhook bench-kafka bench-kafka-stream-sketch bench-delivery-rows chaos clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/chargewire demo

test-services:
	scripts/ensure-test-services

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

pytest: install test-services
	$(BIN)/pytest

test: lint typecheck pytest

screenshots: install test-services
	CHARGEWIRE_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/pytest tests/integration/backoffice -q

bench-ingest: install test-services
	$(BIN)/python -m bench.ingest

bench-webhook: install test-services
	$(BIN)/python -m bench.webhook

bench-kafka: install test-services
	command -v kcat >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat
	$(BIN)/python -m bench.kafka

# A design measure for docs/decisions/0004-deliveries-without-event-foreign-key.md, not a feature's benchmark.
bench-delivery-rows: install test-services
	$(BIN)/python -m bench.delivery_rows

# A design measure for docs/decisions/0002-kafka-streamed-delivery.md, not a feature's benchmark.
bench-kafka-stream-sketch: install test-services
	$(BIN)/python -m bench.kafka_stream_sketch

# The long chaos run (each fault 10 s, both stores; root, for its tmpfs): tables printed, JSON in docs/reliability/.
chaos: install test-services
	$(BIN)/python -m tests.chaos --profile long --json docs/reliability/chaos.json

clean:
	rm -rf $(VENV) data .mypy_cache .ruff_cache .pytest_cache
