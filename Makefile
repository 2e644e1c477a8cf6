# tokengate: the two commands are `make demo` and `make test`.
GO ?= go

.PHONY: build test demo bench fmt-check clean

build:
	$(GO) build -o bin/caddy ./cmd/caddy
	$(GO) build -o bin/leasing-api ./examples/leasing-api
	$(GO) build -o bin/tokengate-bench ./cmd/tokengate-bench

# Everything: formatting, vet, and every test (unit, real Caddy, real
# processes) under the race detector.
test: fmt-check
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

fmt-check:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './bin/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

demo: build
	bash examples/demo/demo.sh

# Micro-benchmarks of the verify path, then plain reverse_proxy against
# tokengate in one interleaved run.
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./plugin/...
	bin/tokengate-bench -caddy bin/caddy

clean:
	rm -rf bin
