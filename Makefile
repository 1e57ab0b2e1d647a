# ingest: `make help` lists the targets.
.DEFAULT_GOAL := help
CARGO ?= cargo
SHELL := /bin/bash

.PHONY: help run test test-unit lint fmt ci-deps

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

run: ## Run the main job on an embedded Kafka into ./landed and print what landed
	$(CARGO) run --release -p ingest-cli -- demo --out landed

test: ## Run every test (unit, in-process broker, processes, tansu + DuckDB, Azurite, s3s-fs)
	@mkdir -p target
	set -o pipefail; $(CARGO) test --workspace --all-targets -- --test-threads=2 2>&1 | tee target/test-output.log
	@awk '/^test result:/ {p += $$4; f += $$6} END {printf "%d passed, %d failed\n", p, f}' target/test-output.log

test-unit: ## Run only the pure unit tests
	$(CARGO) test --workspace --lib

lint: ## Check formatting and clippy (as CI does)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

ci-deps: ## Install what the tests need (tansu, s3s-fs, Azurite, DuckDB); CI runs this
	bash .ci/install-deps
