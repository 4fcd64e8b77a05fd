SHELL := /bin/bash
.DEFAULT_GOAL := help

DEV_PG := .tmp/pg

.PHONY: help build image test test/short test/browser lint demo db/start db/stop clean

help: ## List targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_\/-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## Build bin/syncctl
	go build -o bin/syncctl ./cmd/syncctl

image: ## Build the OCI image (static binary, non-root, no daemon needed): .tmp/image/oci and .tmp/image/syncctl.tar
	go run ./internal/image/cmd/build-image -out .tmp/image $(IMAGE_FLAGS)

test: ## Run all tests with -race against a throwaway PostgreSQL (or DATABASE_URL)
	WITH_PGBOUNCER=1 .ci/with-pg.sh go test -race -count=1 -timeout 9m ./...

test/short: ## Same as test, without -race (quicker)
	WITH_PGBOUNCER=1 .ci/with-pg.sh go test -count=1 -timeout 9m ./...

.PHONY: chaos
chaos: ## Long chaos test: 3 workers, faults, kill -9 (CHAOS_DURATION, default 3m; CHAOS_SEED)
	CHAOS_DURATION=$${CHAOS_DURATION:-3m} .ci/with-pg.sh go test -count=1 -v -run '^TestChaos' -timeout 30m ./internal/e2e

.PHONY: bench
bench: ## Benchmarks against a throwaway PostgreSQL: one table + .tmp/bench/bench-results.json (~8 min; BENCH_FLAGS=-help)
	.ci/with-pg.sh go run ./internal/bench/cmd/bench $(BENCH_FLAGS)

test/browser: ## Render `syncctl ui` in headless Chromium (installs chromium; not part of test)
	.ci/browser-check.sh

lint: ## gofmt, go mod tidy (check only), go vet, staticcheck
	@go mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	@files=$$(git ls-files --cached --others --exclude-standard '*.go'); \
	bad=$$([[ -z $$files ]] || gofmt -l $$files); \
	if [[ -n $$bad ]]; then echo "gofmt needed on:"; echo "$$bad"; exit 1; fi
	go vet ./...
	go tool staticcheck ./...

demo: ## Run the end-to-end demo (throwaway PostgreSQL unless DATABASE_URL is set)
	.ci/with-pg.sh .ci/demo.sh

db/start: ## Start a persistent dev PostgreSQL under .tmp/pg and print the URL
	@url=$$(.ci/pg.sh start $(DEV_PG)) && echo "export DATABASE_URL='$$url'"

db/stop: ## Stop the dev PostgreSQL and remove .tmp/pg
	.ci/pg.sh stop $(DEV_PG)

clean: ## Remove build and test output
	rm -rf bin coverage.out cover.out coverage.html *.coverprofile
