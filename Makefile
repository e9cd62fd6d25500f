# chargewire: `make demo` runs the service on the embedded SQLite default; `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install demo test checks-beside-pytest lint typecheck pytest test-services test-clients test-client-python test-client-typescript test-client-go test-client-java test-bench-peers receiver-kit-check screenshots bench-ingest bench-publish-path bench-publish-round bench-attempt-path bench-record-flush bench-http-ingress bench-webhook bench-load bench-thread-costs bench-idle-timers bench-kafka bench-filter-latency bench-kafka-stream-sketch bench-delivery-rows bench-ocpp bench-partition-plans bench-partition-drop bench-retention chaos test-long fuzz clean

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

# Long scenarios that `make test` leaves to this target (the other broker faults with worker processes).
test-long: install test-services
	$(BIN)/pytest -m long

# A long fuzzing run of the API with every token scope on both stores (docs/tenant-limits.md, "Fuzzing"): stateless
# requests (FUZZ_EXAMPLES with the admin token, a fifth with the others) and stateful chains (FUZZ_SCENARIOS of
# up to FUZZ_STEPS calls); it prints the steps and statuses each scope reached. A test may take more than the
# suite's 300 s timeout here.
FUZZ_EXAMPLES ?= 3000
FUZZ_SCENARIOS ?= 150
FUZZ_STEPS ?= 20
fuzz: install test-services
	CHARGEWIRE_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) CHARGEWIRE_FUZZ_SCENARIOS=$(FUZZ_SCENARIOS) CHARGEWIRE_FUZZ_STEPS=$(FUZZ_STEPS) \
		$(BIN)/pytest -s -q -p no:cacheprovider --timeout=3600 tests/integration/api/test_fuzz_openapi.py tests/integration/api/test_fuzz_stateful.py

# The TypeScript and Java clients' checks build in clients/, as the receiver kit's end-to-end test does, so they end
# before pytest starts; they run beside the venv's install, which mostly waits on downloads. pytest (~20 min) mostly
# waits on its services, peers and subprocesses, so the checks that share no files with it run beside it, one at a
# time, on the second core; their output is held until they all end, so that it does not break into pytest's.
test:
	$(MAKE) --no-print-directory -j2 install test-client-typescript test-client-java
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory -j2 pytest checks-beside-pytest

CHECKS_BESIDE_PYTEST := typecheck receiver-kit-check test-client-go test-bench-peers
checks-beside-pytest:
	@log=$$(mktemp); status=0; $(MAKE) --no-print-directory $(CHECKS_BESIDE_PYTEST) >$$log 2>&1 || status=$$?; \
		echo; cat $$log; rm -f $$log; exit $$status

# The receiver kit (clients/): each language's own toolchain, dependencies from its registry, cached in the
# default user caches (~/.npm, ~/go/pkg/mod, ~/.m2). `pytest` runs the Python client's tests and the
# end-to-end test of all four (tests/acceptance/test_receiver_kit_end_to_end.py); test-client-python runs
# the Python client's alone.
test-clients: test-client-typescript test-client-go test-client-java

receiver-kit-check: install
	scripts/generate-receiver-kit --check

test-client-python: install
	$(BIN)/pytest -q tests/unit/receiver tests/integration/receiver

# npm ci empties node_modules and installs again (8 s): only when package-lock.json changed since (npm writes the
# hidden lockfile last; tests/support/receiver_kit.py reads it the same way).
TS_INSTALLED := clients/typescript/node_modules/.package-lock.json
$(TS_INSTALLED): clients/typescript/package-lock.json
	cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error
	touch $@

test-client-typescript: $(TS_INSTALLED)
	cd clients/typescript && bash -o pipefail -c 'npm test 2>&1 | tail -n 9'

test-client-go:
	cd clients/go && go mod download && go vet ./... && go test -count=1 ./...
	cd clients/go/examples/kafka-consumer && go mod download && go vet ./...

# Maven and the tests' JVM compile with C1 only: short runs, where C2's compiling costs more than it gives (30 s -> 10 s).
JAVA_C1 := -XX:TieredStopAtLevel=1
test-client-java:
	cd clients/java && MAVEN_OPTS="$(JAVA_C1)" bash -o pipefail -c "mvn -B -ntp -Dstyle.color=never -DargLine=$(JAVA_C1) test | sed 's/\x1b\[[0-9;]*m//g' | grep -E 'Tests run:|BUILD|ERROR|FAIL'"

screenshots: install test-services
	CHARGEWIRE_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/pytest tests/integration/backoffice -q

bench-ingest: install test-services
	$(BIN)/python -m bench.ingest

# CPU per published event in process (no HTTP): E.g. ARGS="--backend sqlite --backend postgresql --shape 1x1".
bench-publish-path: install test-services
	$(BIN)/python -m bench.publish_path $(ARGS)

# CPU per webhook attempt in process (hand-off to record, SQLite); e.g. ARGS="--rates 50,200 --seconds 10".
bench-attempt-path: install
	$(BIN)/python -m bench.attempt_path $(ARGS)

# CPU and round trips per record flush on each store, in process; e.g. ARGS="--backends postgresql --adapter".
bench-record-flush: install test-services
	$(BIN)/python -m bench.record_flush $(ARGS)

# CPU per publish request in the HTTP ingress alone (uvicorn, middlewares, FastAPI, route; nothing stored).
# E.g. ARGS="--requests 3000 --code /tmp/older-checkout" to compare a commit.
bench-http-ingress: install
	$(BIN)/python -m bench.http_ingress $(ARGS)

# CPU and trips per single-event publish round (SQLite and PostgreSQL), counts per publish.
bench-publish-round: install test-services
	$(BIN)/python -m bench.publish_round $(ARGS)

bench-webhook: install test-services
	$(BIN)/python -m bench.webhook

# CPU per event and latency at fixed rates (50 to 2,000 events/s); e.g. ARGS="--seconds 5 --rates 200 --backends sqlite".
# Its publisher and receiver are Go (bench/loadpeers, standard library and clients/go), built into its bin/.
bench-load: install test-services
	cd bench/loadpeers && go build -o bin/loadpeers .
	$(BIN)/python -m bench.load $(ARGS)

# The load benchmark's Go peers: formatted, vetted, tested (a few seconds; no dependency to download).
test-bench-peers:
	cd bench/loadpeers && test -z "$$(gofmt -l .)" && go vet ./... && go test -count=1 ./...

bench-thread-costs: install test-services
	$(BIN)/python -m bench.thread_costs $(ARGS)

bench-idle-timers: install test-services
	$(BIN)/python -m bench.idle_timers $(ARGS)

bench-kafka: install test-services
	command -v kcat >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat
	$(BIN)/python -m bench.kafka

bench-ocpp: install
	$(BIN)/python -m bench.ocpp

bench-partition-plans: install test-services
	$(BIN)/python -m bench.partition_plans

bench-partition-drop: install test-services
	$(BIN)/python -m bench.partition_drop

# 45 simulated days of 0.5 % of 10,000 charge points' traffic on each store, 30-day retention: ~15 minutes a store.
# E.g. ARGS="--days 35 --backends sqlite"; `python -m bench.retention_report` redraws from the JSON.
bench-retention: install test-services
	$(BIN)/python -m bench.retention $(ARGS)

bench-filter-latency: install test-services
	$(BIN)/python -m bench.filter_latency

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
