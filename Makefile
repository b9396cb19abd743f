# switchyard: see README.md. Every target needs only Go and the project's
# own scripts; `make test` installs and starts the brokers it needs.
GO ?= go
BIN := bin

.PHONY: demo test build vet fmt bench fuzz clean brokers-start brokers-stop help

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

demo: ## run the example pipeline end to end on the embedded default
	$(GO) run ./examples/demo

test: ## install and start Pulsar and Mosquitto, then gofmt, vet and race-test everything
	./scripts/test.sh

build: ## build every binary into bin/
	$(GO) build -buildvcs=true -o $(BIN)/ ./cmd/... ./examples/...

vet: ## go vet
	$(GO) vet ./...

fmt: ## gofmt the tree
	gofmt -w $$(git ls-files '*.go')

fuzz: ## fuzz the JSON decoder for a minute
	$(GO) test -run='^$$' -fuzz=FuzzUnmarshal -fuzztime=60s ./schema/

brokers-start: ## start Pulsar and Mosquitto for manual work (see scripts/*.sh env)
	./scripts/mosquitto.sh install && ./scripts/mosquitto.sh start
	./scripts/pulsar.sh install && ./scripts/pulsar.sh start

brokers-stop: ## stop the brokers started by brokers-start
	-./scripts/pulsar.sh stop
	-./scripts/mosquitto.sh stop

clean: ## remove build output
	rm -rf $(BIN)

bench: ## measure throughput, latency and footprint against the raw clients and Python (starts brokers as needed)
	./scripts/bench.sh
