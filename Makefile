# kroll — see README.md. Every target is safe to run repeatedly.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := build

GO       ?= go
PKG      := github.com/kroll-dev/kroll
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X $(PKG)/pkg/buildinfo.version=$(VERSION) -X $(PKG)/pkg/buildinfo.commit=$(COMMIT)
BINARIES := kroll-agent kroll-coordinator krollctl
FUZZTIME ?= 20s

# Debian packages the tests need (VM tier: qemu, busybox-static, cpio, e2fsprogs;
# host tier: bird2, iproute2; zstd, xz-utils for the bundles agent/stage
# tests make with tar; fdisk's sfdisk for test/systemdvm's boot disk) and
# the ones only `make generate` needs.
TEST_DEBS     := qemu-system-x86 busybox-static kmod cpio e2fsprogs fdisk bird2 iproute2 lintian rpm systemd debootstrap openssl prometheus zstd xz-utils grub2-common dpkg-dev
GENERATE_DEBS := clang llvm bpftool libbpf-dev linux-libc-dev
BENCH_DEBS    := etcd-server
# What `make demo` (VM agents) needs beyond Go; test/demo checks the same
# commands before it starts anything (TestPreflight keeps both in step).
DEMO_DEBS     := qemu-system-x86 busybox-static e2fsprogs
# What `make demo-sim` needs (its train section builds an apt repository).
DEMO_SIM_DEBS := dpkg-dev

# Packages with VM-tier tests (qemu), run verbosely so the kernels booted
# and the uname before/after a kexec show in the output; one package at a
# time (-p 1): TCG guests of several packages on two cores slow each other
# down past the tests' bounded waits (31 min in all on this machine).
VM_PKGS = ./test/vm/... ./bpf/... ./agent/mitigate/... ./agent/boot/... ./test/e2e/... ./test/demo/... ./test/systemdvm/...

.PHONY: build deps deps-generate test test-unit test-vm bench bench-region generate lint fuzz demo demo-deps demo-sim demo-sim-deps clean

build:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/kroll-agent ./agent/cmd/kroll-agent
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/kroll-coordinator ./coordinator/cmd/kroll-coordinator
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/krollctl ./coordinator/cmd/krollctl

# Installs what the tests need, only when missing; fails loudly when it cannot.
deps:
	@./scripts/deps.sh $(TEST_DEBS)
	$(GO) mod download
	$(GO) mod download -modfile=tools/nfpm/go.mod
	$(GO) mod download -modfile=tools/go-licenses/go.mod

deps-generate:
	@./scripts/deps.sh $(GENERATE_DEBS)

# All tiers: unit, cluster, host (root) and VM (qemu). Nothing skips with CI=true.
test:
	$(GO) test -count=1 -timeout 30m $$($(GO) list ./... | grep -v -e '/test/vm' -e '/test/e2e' -e '/test/demo' -e '/test/systemdvm' -e '/kroll/bpf' -e '/agent/mitigate' -e '/agent/boot')
	$(GO) test -count=1 -p 1 -timeout 70m -v $(VM_PKGS)

# Fast tier only: no root, no VMs.
test-unit:
	$(GO) test -short -count=1 ./...

test-vm:
	$(GO) test -count=1 -p 1 -timeout 70m -v $(VM_PKGS)

bench:
	@./scripts/deps.sh $(BENCH_DEBS)
	$(GO) test -run '^$$' -bench . -benchmem ./...

# BenchmarkRegionHeartbeats (and, with KROLL_BENCH_SLOT=1, BenchmarkSlotThroughput)
# for the coordinator at BENCH_BASE (default: the merge-base with main) and
# the working tree, side by side; knobs in scripts/bench-region.sh. Not in CI.
bench-region:
	./scripts/bench-region.sh $(BENCH_BASE)

# Runs every fuzz target for FUZZTIME each.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# Regenerates the bpf2go objects (needs clang; see deps-generate).
generate: deps-generate
	$(GO) generate ./...

lint:
	@bad=$$(gofmt -l .); if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi
	$(GO) vet ./...

# The main job on one machine: a 3-node quorum, VM agents in two
# datacenters, a signed mitigation pushed (audit, enforce), a kernel rolled
# through with progress on screen, a summary. demo-sim: simulated hosts.
# Installs DEMO_DEBS when missing, as `make deps` does (as root; otherwise
# it stops at once naming them). A failed demo keeps its logs and says where.
# The VM fleet (kexec upgrades in qemu), then the simulated fleet with the
# release train (feed → staging → control → edge, cve show before/after).
demo: demo-deps demo-sim-deps build
	$(GO) run ./test/demo --per-dc 2
	$(GO) run ./test/demo --sim --per-dc 2

demo-deps:
	@./scripts/deps.sh $(DEMO_DEBS)

demo-sim: demo-sim-deps build
	$(GO) run ./test/demo --sim --per-dc 2

demo-sim-deps:
	@./scripts/deps.sh $(DEMO_SIM_DEBS)

clean:
	rm -rf bin dist

# System packages: .deb and .rpm of kroll-agent, kroll-coordinator and
# krollctl in PKG_DIST, made by nfpm (a tool in its own modfile,
# tools/nfpm/go.mod, out of kroll's module graph) from packaging/ and
# systemd/; the version comes from the git tag/commit (packaging/version.sh).
# `make packages` builds static linux binaries for each of PKG_ARCHES
# (GOARCH names) into bin/linux-ARCH and packages each; `make
# packages-only` packages the binaries in PKG_BIN as PKG_ARCH. The manual
# pages come from running the binaries in PKG_MAN_BIN, which must run on
# this machine (bin/, the host's build, for a cross-built PKG_BIN).
PKG_VERSION ?= $(shell packaging/version.sh)
PKG_ARCH    ?= $(shell $(GO) env GOARCH)
PKG_ARCHES  ?= amd64 arm64
PKG_DIST    ?= dist
PKG_BIN     ?= bin
PKG_MAN_BIN ?= $(PKG_BIN)

# Manual pages (packaging/man.sh) in MAN_DIR: man1/krollctl*.1.gz and
# man8/kroll-agent*.8.gz, one per command, generated from the command
# trees; man8/kroll-coordinator.8.gz. The packages ship the same pages.
MAN_DIR ?= dist/man

.PHONY: man packages packages-only
man: build
	packaging/man.sh bin $(MAN_DIR)

packages: build $(addprefix build-linux-,$(PKG_ARCHES))
	@for a in $(PKG_ARCHES); do \
	  $(MAKE) --no-print-directory packages-only PKG_VERSION='$(PKG_VERSION)' PKG_ARCH=$$a PKG_BIN=bin/linux-$$a PKG_MAN_BIN=bin; \
	done

# Static, stripped binaries for linux/ARCH (a GOARCH) in bin/linux-ARCH.
build-linux-%:
	@mkdir -p bin/linux-$*
	CGO_ENABLED=0 GOOS=linux GOARCH=$* $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/linux-$*/kroll-agent ./agent/cmd/kroll-agent
	CGO_ENABLED=0 GOOS=linux GOARCH=$* $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/linux-$*/kroll-coordinator ./coordinator/cmd/kroll-coordinator
	CGO_ENABLED=0 GOOS=linux GOARCH=$* $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/linux-$*/krollctl ./coordinator/cmd/krollctl

# Packages the binaries in PKG_BIN as they are, without building them.
packages-only:
	@test -n '$(PKG_VERSION)' || { echo "packages: no version (packaging/version.sh)"; exit 1; }
	@case '$(PKG_ARCH)' in amd64|arm64) ;; *) echo "packages: PKG_ARCH '$(PKG_ARCH)' is not amd64 or arm64"; exit 1;; esac
	@for b in $(BINARIES); do \
	  $(GO) version -m '$(PKG_BIN)'/$$b | grep -qx '[[:space:]]*build[[:space:]]*GOARCH=$(PKG_ARCH)' || \
	    { echo "packages: $(PKG_BIN)/$$b is not a Go binary for GOARCH=$(PKG_ARCH)"; exit 1; }; \
	done
	@mkdir -p $(PKG_DIST)
	packaging/stage.sh dist/.stage '$(PKG_VERSION)' '$(PKG_MAN_BIN)'
	@for p in agent coordinator krollctl; do for f in deb rpm; do \
	  KROLL_PKG_VERSION='$(PKG_VERSION)' KROLL_PKG_ARCH='$(PKG_ARCH)' KROLL_PKG_BIN='$(PKG_BIN)' \
	    $(GO) tool -modfile=tools/nfpm/go.mod nfpm package --config packaging/nfpm-$$p.yaml --packager $$f --target $(PKG_DIST)/; \
	done; done
