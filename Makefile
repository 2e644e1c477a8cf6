# tokengate: the two commands are `make demo` and `make test`.
GO ?= go

.PHONY: build test demo bench scale fmt-check fuzz clean

build:
	$(GO) build -o bin/caddy ./cmd/caddy
	$(GO) build -o bin/leasing-api ./examples/leasing-api
	$(GO) build -o bin/tokengate-bench ./cmd/tokengate-bench

# Everything: formatting, vet, and every test (unit, real Caddy, real
# processes, headless Chromium) under the race detector. Test artifacts
# (the browser test's screenshot) land in test-artifacts/.
test: fmt-check examples/frontend/node_modules
	$(GO) vet ./...
	mkdir -p test-artifacts
	$(GO) test -race -count=1 -artifacts -outputdir $(CURDIR)/test-artifacts ./...
	$(MAKE) fuzz

# Each fuzz target for FUZZTIME, on top of its committed seed corpus
# (testdata/fuzz): token verification, Caddyfile parsing, JSON field
# extraction and splicing, credential parsing.
FUZZTIME ?= 5s
FUZZ_TARGETS = plugin/token:FuzzVerify plugin/token:FuzzVerifyClaims plugin:FuzzUnmarshalCaddyfile \
	plugin:FuzzField plugin:FuzzSpliceFields plugin:FuzzCredentials
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz $$name ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) ./$$pkg/ || exit 1; \
	done

# The browser test's driver (playwright-core, no browser download: it uses
# the system's Chromium).
examples/frontend/node_modules: examples/frontend/package.json examples/frontend/package-lock.json
	cd examples/frontend && npm ci --no-audit --no-fund
	touch $@

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

# Memory per session (Redis, bbolt, memory) and rotation cost from 1k to 1M
# sessions; several minutes.
scale:
	$(GO) run ./cmd/tokengate-scale

clean:
	rm -rf bin test-artifacts examples/frontend/node_modules
