#!/usr/bin/env bash
# make demo: what this build of kroll can do, end to end, on one machine.
# Cleans up its temporary directory on exit, also on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d /tmp/kroll-demo.XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. an operator key pair"
bin/krollctl keygen --out "$tmp/ops"

step "2. sign the Copy Fail (CVE-2026-31431) mitigation policy"
cp docs/examples/copy-fail.yaml "$tmp/copy-fail.yaml"
sed -n '/^id:/,$p' "$tmp/copy-fail.yaml"
bin/krollctl sign --key "$tmp/ops.key" "$tmp/copy-fail.yaml"
bin/krollctl verify --key "$tmp/ops.pub" "$tmp/copy-fail.yaml"

step "3. a tampered policy (audit → enforce without re-signing) is refused"
sed 's/^mode: audit/mode: enforce/' "$tmp/copy-fail.yaml" > "$tmp/tampered.yaml"
cp "$tmp/copy-fail.yaml.sig" "$tmp/tampered.yaml.sig"
if bin/krollctl verify --key "$tmp/ops.pub" "$tmp/tampered.yaml"; then
  echo "demo: a tampered policy verified — this is a bug" >&2; exit 1
fi

step "4. bpf-lsm denies AF_ALG for real, on Debian 6.1 and 6.12 kernels booted in qemu"
if ! command -v qemu-system-x86_64 >/dev/null || ! command -v busybox >/dev/null; then
  echo "demo: qemu or busybox-static missing; run 'make deps' first" >&2; exit 1
fi
go test -count=1 -v -run 'TestLSMDenies' ./test/vm/ 2>&1 | grep -E 'lsm_test.go|^(--- |ok|FAIL)'

step "done"
