# Rampart's make targets. GNU make; run `make help` for the list.

export PATH := /usr/local/go/bin:$(PATH)

# Version stamped into the binaries (bin/rampart version).
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

GO      ?= go
BIN     := bin
LDFLAGS := -X main.version=$(VERSION)
GOBUILD := CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)"

# Coraza with Rampart's patches (waf/corazapatch/README.md): every go
# command here, and every one the tests start, builds with this go.mod,
# which is the repository's plus a replace line for the patched copy. The
# repository's go.mod stays stock, so a plain `go build` or `go install`
# still works, with a slower WAF (`rampart version` says which it has).
CORAZA_MODFILE := $(CURDIR)/build/rampart.mod
export GOFLAGS := $(strip $(GOFLAGS) -modfile=$(CORAZA_MODFILE))
# Tells waf's TestCorazaBuild which Coraza the tests must find.
export RAMPART_CORAZA := patched

# make run
QUICKSTART ?= examples/quickstart.yaml
DEMO_ADDR  ?= 127.0.0.1:9000

# Debian packages the tests need; adding one is one word here.
TEST_DEB_PACKAGES := redis-server prometheus pebble systemd haproxy curl
# The race detector needs cgo, hence a C toolchain.
RACE_DEB_PACKAGES ?= gcc libc6-dev
# HTTP/2 tools (docs/testing-http2.md): h2load (nghttp2-client) and Caddy
# for make bench's h2 lines, nginx for make interop-nginx and h2spec-nginx.
H2_DEB_PACKAGES := nghttp2-client caddy nginx openssl

# Third-party test tools built from the Go module proxy by make deps, each
# in a directory of TOOLS (they are named after their package directories).
# h2spec's latest release has no go.mod: go install resolves its imports
# (golang.org/x/net, cobra, color) at their latest versions.
TOOLS                := $(CURDIR)/build/tools
H2SPEC_VERSION       := v2.2.1+incompatible
GRPC_INTEROP_VERSION := v1.85.0
H2SPEC               := $(TOOLS)/h2spec
# make interop / make h2spec: the Rampart they test; h2spec's bar (of 145).
INTEROP_RAMPART ?= $(CURDIR)/$(BIN)/rampart
H2SPEC_MIN      ?= 142

# Packages that share state between goroutines get a second run under -race.
# Patterns whose directory does not exist (yet) are skipped.
# Every fuzz target runs this many inputs in make test (make fuzz: FUZZTIME
# each). A count, not a duration: with a duration, Go's fuzz coordinator
# can fail a clean run with "context deadline exceeded" as the time runs out
# (golang/go#75804, fixed in Go 1.27; seen here on FuzzHostHeader). 5000
# inputs take 1-5 s per target on this machine.
TEST_FUZZTIME ?= 5000x
# FuzzEngineDifferential (waf) runs two CRS inspections or more per input,
# a few inputs a second under the fuzzer: make test gives it a smoke count,
# make fuzz a long run.
TEST_DIFF_FUZZTIME ?= 20x
DIFF_FUZZTIME ?= 5m
RACE_PKGS ?= ./proxy/... ./wire/... ./balancer/... ./ratelimit/... ./tls/... ./metrics/... ./compress/... ./auth/... ./cache/...

# Bounds each `go test` invocation so `make test` stays well inside 15 minutes.
TEST_TIMEOUT ?= 10m
# How long `make fuzz` runs each fuzz target.
FUZZTIME ?= 30s
# How long `make soak` drives load while injecting faults.
SOAK_DURATION ?= 10m

# sudo only when not root and sudo exists (CI runs as root).
SUDO := $(shell if [ "$$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then echo sudo; fi)

.DEFAULT_GOAL := build
.PHONY: all build run deps h2tools interop interop-nginx h2spec h2spec-nginx h2spec-caddy test lint fmt-check vet bench fuzz crs soak image clean help coraza coraza-test coraza-verdicts

all: build

help:
	@echo "make build   build bin/rampart and bin/rampart-demo"
	@echo "make run     start the demo upstream and Rampart with $(QUICKSTART)"
	@echo "make test    what CI runs (9-13 min on 2 cores): apt-get installs missing test packages, then lint, tests, race, fuzz"
	@echo "make lint    gofmt check and go vet"
	@echo "make bench   bash bench/run.sh"
	@echo "make fuzz    run every fuzz target for FUZZTIME ($(FUZZTIME)) each, FuzzEngineDifferential for DIFF_FUZZTIME ($(DIFF_FUZZTIME))"
	@echo "make crs     the OWASP CRS regression suite through a running Rampart (part of make test)"
	@echo "make interop grpc-go's interop suite through Rampart, h2c and TLS (interop-nginx: through nginx)"
	@echo "make h2spec  h2spec against Rampart's TLS+h2 listener, at least H2SPEC_MIN ($(H2SPEC_MIN)) of 145 (h2spec-nginx, h2spec-caddy)"
	@echo "make soak    load with faults (upstream and Redis kills, reloads) for SOAK_DURATION ($(SOAK_DURATION))"
	@echo "make image   build the container image (needs Docker)"
	@echo "make coraza  the patched Coraza the builds use, in build/ (waf/corazapatch)"
	@echo "make coraza-verdicts  the whole CRS suite on stock and patched Coraza: the same rules must fire (part of make test)"
	@echo "make clean   remove build and benchmark output"

# The patched Coraza, made again when go.mod, go.sum or the patch change.
coraza: $(CORAZA_MODFILE)
$(CORAZA_MODFILE): go.mod go.sum waf/corazapatch/prepare.sh $(wildcard waf/corazapatch/*.patch)
	bash waf/corazapatch/prepare.sh build

# Coraza's own tests of the packages the patch changes, on the patched copy
# that the modfile's replace line names (with Coraza's go.mod, hence GOFLAGS
# cleared).
coraza-test: $(CORAZA_MODFILE)
	cd "$$(sed -n 's/^replace .* => //p' $(CORAZA_MODFILE))" && \
		GOFLAGS= GOWORK=off $(GO) test -count=1 ./internal/bodyprocessors/... ./internal/collections/... ./internal/corazawaf/... ./internal/operators/... ./internal/seclang/... ./internal/transformations/... ./experimental/... ./testing/...

# The patch must change no verdict: the whole CRS regression suite, run in
# process on stock and on patched Coraza, must fire the same rules for
# every one of its tests.
coraza-verdicts: $(CORAZA_MODFILE)
	GOFLAGS= RAMPART_CRS=all RAMPART_CRS_FIRED=$(CURDIR)/build/fired-stock.txt \
		$(GO) test -count=1 -run '^TestCRSRegression$$' ./waf/crstest
	RAMPART_CRS=all RAMPART_CRS_FIRED=$(CURDIR)/build/fired-patched.txt \
		$(GO) test -count=1 -run '^TestCRSRegression$$' ./waf/crstest
	@diff build/fired-stock.txt build/fired-patched.txt >build/fired.diff || \
		{ echo "the Coraza patch changed which rules fire (build/fired.diff):"; head -20 build/fired.diff; exit 1; }
	@echo "stock and patched Coraza fire the same rules in all $$(wc -l <build/fired-stock.txt) CRS tests"

build: $(CORAZA_MODFILE)
	$(GOBUILD) -o $(BIN)/rampart ./cmd/rampart
	$(GOBUILD) -o $(BIN)/rampart-demo ./examples/demo

# Both processes run in the background so that the shell's `wait` can be
# interrupted: Ctrl-C reaches both directly (same process group), and a
# SIGTERM to make is passed on by the trap. The demo never outlives Rampart.
run: build
	@$(BIN)/rampart-demo -addr $(DEMO_ADDR) & demo=$$!; \
	$(BIN)/rampart run --config $(QUICKSTART) & proxy=$$!; \
	trap ':' INT; \
	trap 'kill -TERM $$proxy $$demo 2>/dev/null' TERM HUP; \
	wait $$proxy; status=$$?; \
	while kill -0 $$proxy 2>/dev/null; do wait $$proxy; status=$$?; done; \
	kill -TERM $$demo 2>/dev/null; wait $$demo 2>/dev/null; \
	exit $$status

deps:
	@missing=""; \
	for p in $(TEST_DEB_PACKAGES) $(RACE_DEB_PACKAGES) $(H2_DEB_PACKAGES); do \
		command -v $$p >/dev/null 2>&1 || dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "deps: installing$$missing"; \
		policy=""; if [ ! -e /usr/sbin/policy-rc.d ]; then policy=1; \
			printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee /usr/sbin/policy-rc.d >/dev/null; \
			$(SUDO) chmod +x /usr/sbin/policy-rc.d; fi; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
		rc=$$?; [ -z "$$policy" ] || $(SUDO) rm -f /usr/sbin/policy-rc.d; [ $$rc = 0 ] || exit $$rc; \
	fi
	@$(MAKE) --no-print-directory h2tools

# h2spec and grpc-go's interop server and client, built once per version
# (a stamp file beside each holds the version it was built from). GOFLAGS is
# cleared: `go install pkg@version` ignores the main module, and -modfile
# would make it fail.
h2tools:
	@mkdir -p $(TOOLS)
	@if [ ! -x $(H2SPEC) ] || [ "$$(cat $(H2SPEC).version 2>/dev/null)" != "$(H2SPEC_VERSION)" ]; then \
		echo "deps: go install h2spec@$(H2SPEC_VERSION)"; \
		GOFLAGS= GOBIN=$(TOOLS) $(GO) install github.com/summerwind/h2spec/cmd/h2spec@$(H2SPEC_VERSION) && \
		echo "$(H2SPEC_VERSION)" >$(H2SPEC).version || exit 1; \
	fi
	@for d in server client; do \
		dir=$(TOOLS)/grpc-interop-$$d; \
		if [ ! -x $$dir/$$d ] || [ "$$(cat $$dir/version 2>/dev/null)" != "$(GRPC_INTEROP_VERSION)" ]; then \
			echo "deps: go install google.golang.org/grpc/interop/$$d@$(GRPC_INTEROP_VERSION)"; \
			mkdir -p $$dir && GOFLAGS= GOBIN=$$dir $(GO) install google.golang.org/grpc/interop/$$d@$(GRPC_INTEROP_VERSION) && \
			echo "$(GRPC_INTEROP_VERSION)" >$$dir/version || exit 1; \
		fi; \
	done

fmt-check:
	@out=$$(find . -path ./build -prune -o -name '*.go' -print | xargs gofmt -l); if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet: $(CORAZA_MODFILE)
	$(GO) vet ./...

lint: fmt-check vet

# make test prints a banner before each phase with the time elapsed since it
# started, so a slow phase shows in CI's log.
TEST_T0 := $(shell date +%s)
banner = @echo "=== make test: $(1) (at $$(( $$(date +%s) - $(TEST_T0) )) s)"
# heartbeat runs a shell command and prints a line each minute while it
# runs: go test prints a package's result only when the package is done,
# and some take minutes.
heartbeat = ( while sleep 60; do echo "... still running (at $$(( $$(date +%s) - $(TEST_T0) )) s)"; done ) & hb=$$!; \
	$(1); rc=$$?; kill $$hb 2>/dev/null; exit $$rc

test:
	$(call banner,deps: Debian packages the tests need)
	@$(MAKE) --no-print-directory deps
	$(call banner,lint: gofmt and go vet)
	@$(MAKE) --no-print-directory lint
	$(call banner,coraza-test: Coraza's own tests on the patched copy)
	@$(MAKE) --no-print-directory coraza-test
	$(call banner,coraza-verdicts: the CRS suite on stock and patched Coraza)
	@$(MAKE) --no-print-directory coraza-verdicts
	$(call banner,go test ./...)
	@echo "$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./..."
	@$(call heartbeat,$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...)
	$(call banner,the WAF's tests again on stock Coraza (what go install builds))
	GOFLAGS= RAMPART_CORAZA=stock $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./waf/...
	$(call banner,go test -race on the packages that share state)
	@dirs=""; for p in $(RACE_PKGS); do [ -d "$${p%/...}" ] && dirs="$$dirs $$p"; done; \
	pkgs=""; if [ -n "$$dirs" ]; then pkgs=$$($(GO) list $$dirs) || exit 1; fi; \
	if [ -z "$$pkgs" ]; then echo "race: none of $(RACE_PKGS) exists yet"; exit 0; fi; \
	echo "$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT)" $$pkgs; \
	$(call heartbeat,CGO_ENABLED=1 $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $$pkgs)
	$(call banner,fuzz: every fuzz target for $(TEST_FUZZTIME))
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(TEST_FUZZTIME) DIFF_FUZZTIME=$(TEST_DIFF_FUZZTIME)
	$(call banner,done)

bench: $(CORAZA_MODFILE)
	bash bench/run.sh

# Runs each Fuzz function of every package, one at a time (go test -fuzz
# takes a single target).
fuzz: $(CORAZA_MODFILE)
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			t=$(FUZZTIME); [ "$$f" = FuzzEngineDifferential ] && t=$(DIFF_FUZZTIME); \
			echo "fuzz $$pkg $$f ($$t)"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $$t $$pkg || exit 1; \
		done; \
	done

clean:
	rm -rf $(BIN) build bench/.out coverage.out cover.out coverage.html

image:
	docker build --build-arg VERSION=$(VERSION) -t rampart:$(VERSION) .

# grpc-go's interop suite (14 cases, h2c and TLS) and h2spec (TLS) through
# Rampart ($(INTEROP_RAMPART), started from a config the scripts write), and
# the same suites through nginx and Caddy, which prove the harnesses
# (docs/testing-http2.md). make test runs both against Rampart through
# go test (proxy's TestE2EH2spec and TestGRPCInteropThroughRampart, after
# make deps has built the tools).
interop: build deps
	bash internal/interop/interop.sh rampart $(INTEROP_RAMPART)

interop-nginx: deps
	bash internal/interop/interop.sh nginx

h2spec: build deps
	bash internal/interop/h2spec.sh rampart --min $(H2SPEC_MIN) $(INTEROP_RAMPART)

h2spec-nginx: deps
	bash internal/interop/h2spec.sh nginx --min 110

h2spec-caddy: deps
	bash internal/interop/h2spec.sh caddy --min 135

crs: $(CORAZA_MODFILE)
	$(GO) test -count=1 -run TestCRSRegressionThroughProxy -v ./proxy

# Steady load through the WAF, rate limits and balancing while upstreams and
# Redis are killed and the config reloaded; fails on a leak or an avoidable
# failed request. Needs redis-server.
soak: $(CORAZA_MODFILE)
	$(GO) run ./bench/soak -duration $(SOAK_DURATION)
