# Run `make` or `make help` for the targets.
GO ?= go
FUZZTIME ?= 30s

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-zA-Z_\/-]*:.*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/worker
	$(GO) build -o bin/worker ./cmd/worker

.PHONY: assets
assets: ## Rebuild the dashboard's vendored front-end files from npm (pinned in dashboard/package-lock.json)
	cd dashboard && npm ci --no-audit --no-fund
	mkdir -p dashboard/web/vendor/leaflet
	cp dashboard/node_modules/leaflet/dist/leaflet.js dashboard/node_modules/leaflet/dist/leaflet.css \
		dashboard/node_modules/leaflet/LICENSE dashboard/web/vendor/leaflet/

.PHONY: screenshot
screenshot: ## Run the dashboard's browser test (needs chromium) and write docs/dashboard.png for the README
	mkdir -p docs
	rm -f docs/dashboard.png.new
	WORKER_SCREENSHOT=$(CURDIR)/docs/dashboard.png.new $(GO) test -count=1 -run '^TestServeBrowser$$' ./cmd/worker/
	@test -s docs/dashboard.png.new || { echo "no screenshot: the browser test skipped (is chromium installed?)"; exit 1; }
	mv docs/dashboard.png.new docs/dashboard.png

.PHONY: demo
demo: ## Run the demo against the built-in simulated back-end (results in ./demo-output)
	@echo "Building worker (the first build compiles DuckDB's bindings: a few minutes), then running the demo..."
	$(GO) run ./cmd/worker demo --dir demo-output

.PHONY: test
test: ## Run every test with the race detector
	$(GO) test -race -timeout 10m ./...

.PHONY: vet
vet: ## go vet and a gofmt check
	$(GO) vet ./...
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

.PHONY: bench
bench: ## Run the benchmarks (store operations, a whole run against the fake back-end)
	$(GO) test -run '^$$' -bench . -benchmem ./...

.PHONY: kill-campaign
kill-campaign: ## SIGKILL a 500-job run with faults 30 times per table format, then check it (WORKER_KILL_SEED replays)
	WORKER_KILL_CAMPAIGN=1 $(GO) test -count=1 -timeout 30m -run '^TestKillCampaign$$' -v ./test/

.PHONY: pg-kill-campaign
pg-kill-campaign: ## 3 workers on one PostgreSQL table, 20 random SIGKILLs, 1,000 jobs (WORKER_TEST_POSTGRES, see .ci/postgres)
	WORKER_PG_KILL_CAMPAIGN=1 $(GO) test -count=1 -timeout 30m -run '^TestPostgresKillCampaign$$' -v ./test/

.PHONY: pg-bench
pg-bench: ## 1, 2 and 4 worker processes on one PostgreSQL table, 2,000 jobs: jobs/s, requests and statements per job
	$(GO) test -run '^$$' -bench PostgresWorkers -benchtime 1x -timeout 30m ./test/

.PHONY: crash-all
crash-all: ## The drivers' crash case with the open after each kill killed at each of its own points (slow)
	WORKER_CRASH_ALL=1 $(GO) test -race -count=1 -timeout 30m -run 'TestConformance.*/CrashDuringOpen' ./driver/...

.PHONY: fuzz
fuzz: ## Run each fuzz test of every package for FUZZTIME (default 30s)
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "$$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done
