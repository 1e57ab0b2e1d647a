# ingest: `make help` lists the targets.
.DEFAULT_GOAL := help
CARGO ?= cargo
SHELL := /bin/bash

.PHONY: help run test test-unit lint fmt ci-deps new-service image helm-check bench bench-factor bench-encoders bench-flood bench-formats bench-smoke chaos chaos-delta
VERSION ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
CLI = $(CARGO) run --quiet -p ingest-cli --

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

run: ## Run the main job on an embedded Kafka into ./landed and print what landed
	$(CARGO) run --release -p ingest-cli -- demo --out landed

test: ## Install what the tests need (once per machine), then run every test (unit, in-process broker, processes, tansu + DuckDB, Azurite, s3s-fs)
	bash .ci/install-deps
	@mkdir -p target
	set -o pipefail; $(CARGO) test --workspace --all-targets --no-fail-fast -- --test-threads=2 2>&1 | tee target/test-output.log
	@awk '/^test result:/ {p += $$4; f += $$6} END {printf "%d passed, %d failed\n", p, f}' target/test-output.log

bench: ## Benchmark throughput, memory and latency against the gzip ceiling; writes bench/ (about four minutes)
	$(CARGO) run --release --quiet -p ingest-bench -- run --results bench
	@if python3 -c 'import matplotlib' 2>/dev/null; then python3 bench/plot.py bench/throughput.csv bench/throughput.png && echo "wrote bench/throughput.png"; \
	else echo "matplotlib not installed (pip install matplotlib): bench/throughput.png not redrawn"; fi

bench-factor: ## The overhead factor of both record kinds: median and range over 5 runs each, each against gzip timed right after it (about 8 minutes)
	$(CARGO) run --release --quiet -p ingest-bench -- run --throughput-only --repeat 5

bench-encoders: ## The encoders alone (NDJSON+gzip, Parquet) on one thread against gzip alone on the same records (seconds)
	$(CARGO) run --release --quiet -p ingest-bench -- encode

bench-flood: ## Parquet under records that each bring a new field name (50,000): peak RSS against the cap, every record landed (about a minute)
	$(CARGO) run --release --quiet -p ingest-bench -- run --only flood

bench-formats: ## The same orders as Parquet files and as a Delta table, alternated twice: Delta's CPU per GB, peak RSS and commits against Parquet's (about three minutes)
	$(CARGO) run --release --quiet -p ingest-bench -- run --formats 2

bench-smoke: ## The benchmark on a few thousand records (seconds): checks that it works
	$(CARGO) run --release --quiet -p ingest-bench -- run --smoke

chaos: ## Three replicas on tansu killed and stopped at random for 10 min while 1,000,000 records go to 64 partitions, S3 going away; then verify
	CHAOS_SECONDS=$${CHAOS_SECONDS:-600} CHAOS_RECORDS=$${CHAOS_RECORDS:-1000000} CHAOS_PARTITIONS=$${CHAOS_PARTITIONS:-64} \
	CHAOS_REPLICAS=$${CHAOS_REPLICAS:-3} CHAOS_SETTLE_SECONDS=$${CHAOS_SETTLE_SECONDS:-900} \
	$(CARGO) test --release -p ingest-core --test chaos -- --nocapture --exact replicas_killed_at_random_and_storage_outages_land_every_record_once

chaos-delta: ## make chaos landing a Delta table: three replicas committing to one log at once, killed at random, S3 going away; delta-rs verifies
	CHAOS_SECONDS=$${CHAOS_SECONDS:-600} CHAOS_RECORDS=$${CHAOS_RECORDS:-1000000} CHAOS_PARTITIONS=$${CHAOS_PARTITIONS:-64} \
	CHAOS_REPLICAS=$${CHAOS_REPLICAS:-3} CHAOS_SETTLE_SECONDS=$${CHAOS_SETTLE_SECONDS:-900} \
	$(CARGO) test --release -p ingest-core --test chaos -- --nocapture --exact replicas_killed_at_random_and_storage_outages_land_every_record_once_in_a_delta_table

test-unit: ## Run only the pure unit tests
	$(CARGO) test --workspace --lib

lint: ## Check formatting and clippy (as CI does)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

ci-deps: ## Install what the tests need (tansu, s3s-fs, Azurite, s3rver, helm, DuckDB); CI runs this
	bash .ci/install-deps

new-service: ## Generate services/<TOPIC>/ (TOPIC=payments [SOURCE=eventhubs] [STORAGE_URL=s3://...] [FORCE=1])
	@test -n "$(TOPIC)" || { echo "usage: make new-service TOPIC=<topic> [SOURCE=kafka|eventhubs] [STORAGE_URL=s3://bucket/prefix] [FORCE=1]" >&2; exit 2; }
	$(CLI) new-service '$(TOPIC)' $(if $(SOURCE),--source $(SOURCE)) $(if $(STORAGE_URL),--storage-url '$(STORAGE_URL)') $(if $(FORCE),--force)

image: ## Build one service's container image ingest/<SERVICE>:<version> (SERVICE=orders; needs Docker)
	@test -n "$(SERVICE)" || { echo "usage: make image SERVICE=<crate> (ingest-cli list shows them)" >&2; exit 2; }
	docker build --build-arg SERVICE=$(SERVICE) -t ingest/$(SERVICE):$(VERSION) .

helm-check: ## Check the Helm chart (schema, templates; helm lint/template if installed) and every service's values
	$(CARGO) test -p ingest-cli --test chart -- --nocapture
	@for s in $$($(CLI) list | awk 'NR > 1 {print $$1}'); do $(CLI) validate "$$s" || exit 1; done
