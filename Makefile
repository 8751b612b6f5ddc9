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

.PHONY: demo
demo: ## Run the demo against the built-in simulated back-end (results in ./demo-output)
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

.PHONY: fuzz
fuzz: ## Run each fuzz test for FUZZTIME (default 30s)
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./udpjob/
	$(GO) test -run '^$$' -fuzz '^FuzzReadCSV$$' -fuzztime $(FUZZTIME) ./cmd/worker/
	$(GO) test -run '^$$' -fuzz '^FuzzParseBackend$$' -fuzztime $(FUZZTIME) ./cmd/worker/
	$(GO) test -run '^$$' -fuzz '^FuzzWKT$$' -fuzztime $(FUZZTIME) ./cmd/worker/
	$(GO) test -run '^$$' -fuzz '^FuzzRoundTrip$$' -fuzztime $(FUZZTIME) ./driver/csvfile/
	$(GO) test -run '^$$' -fuzz '^FuzzErrorBody$$' -fuzztime $(FUZZTIME) ./remote/
	$(GO) test -run '^$$' -fuzz '^FuzzDocuments$$' -fuzztime $(FUZZTIME) ./remote/
