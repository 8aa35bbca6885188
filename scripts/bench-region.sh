#!/usr/bin/env bash
# bench-region.sh — BenchmarkRegionHeartbeats (issue 13) for a baseline
# kroll-coordinator and the current tree, side by side in one run, plus
# (optionally) BenchmarkSlotThroughput and its etcd comparison.
#
# usage: scripts/bench-region.sh [BASE_REF]
#
#   BASE_REF   git ref of the baseline (default: $KROLL_BENCH_BASE, else the
#              merge-base of HEAD and main). It is checked out with
#              `git worktree add` into a temporary directory and built there;
#              the current coordinator is built from the working tree as it
#              is (uncommitted changes included). The benchmark code itself
#              always comes from the working tree, so both binaries face the
#              same load generator.
#
# Environment (all optional):
#   KROLL_BENCH_AGENTS   rows, comma-separated (default 10000,50000,100000,200000)
#   KROLL_BENCH_WINDOW   measurement window (default 30s)
#   KROLL_BENCH_WARMUP   load before the window (default 10s)
#   KROLL_BENCH_WORKERS  concurrent heartbeat requests (default 8192)
#   KROLL_BENCH_DCS      datacenters (default 330)
#   KROLL_BENCH_ONLY     "base" or "current": run one side only
#   KROLL_BENCH_SLOT=1   also run BenchmarkSlotThroughput/kroll for both
#                        binaries and BenchmarkSlotThroughput/etcd once
#                        (needs etcd: Debian package etcd-server)
#   SLOT_BENCHTIME       -benchtime of BenchmarkSlotThroughput (default 3s)
#   KROLL_BENCH_NODE_ENV extra environment of the coordinator processes
#                        only, space-separated (e.g. "GOGC=off GOMEMLIMIT=2GiB")
#   KROLL_BENCH_OUT      directory for the raw outputs (default: a new
#                        directory under /tmp, kept and printed)
#
# Rows run interleaved (N: base, current; next N: …) so that a change in
# the machine's load hits both sides alike. Nothing here is part of
# `make test` or CI.
set -euo pipefail

root=$(git rev-parse --show-toplevel)
cd "$root"
base_ref=${1:-${KROLL_BENCH_BASE:-}}
if [[ -z $base_ref ]]; then
	base_ref=$(git merge-base HEAD main)
fi
base_commit=$(git rev-parse --verify "$base_ref^{commit}")
if [[ $base_commit == "$(git rev-parse HEAD)" && -z $(git status --porcelain) ]]; then
	echo "bench-region: the baseline $base_ref is the current tree; both sides would be the same" >&2
fi
out=${KROLL_BENCH_OUT:-$(mktemp -d /tmp/kroll-bench-region-XXXXXX)}
mkdir -p "$out"
tmp=$(mktemp -d /tmp/kroll-bench-build-XXXXXX)
cleanup() {
	git -C "$root" worktree remove --force "$tmp/base" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT

echo "== building the baseline ($base_ref = ${base_commit:0:12}) and the current tree"
git worktree add --detach --quiet "$tmp/base" "$base_commit"
(cd "$tmp/base" && CGO_ENABLED=0 go build -trimpath -o "$out/kroll-coordinator-base" ./coordinator/cmd/kroll-coordinator)
CGO_ENABLED=0 go build -trimpath -o "$out/kroll-coordinator-current" ./coordinator/cmd/kroll-coordinator
go test -c -o "$out/cluster.test" ./test/cluster/
git -C "$root" worktree remove --force "$tmp/base"

sides=(base current)
if [[ -n ${KROLL_BENCH_ONLY:-} ]]; then
	sides=("$KROLL_BENCH_ONLY")
fi
rows=${KROLL_BENCH_AGENTS:-10000,50000,100000,200000}

# bench SIDE NAME REGEX [ARGS...]: runs the compiled benchmarks matching
# REGEX against SIDE's binary, output to $out/NAME-SIDE.txt.
bench() {
	local side=$1 name=$2 regex=$3
	shift 3
	echo "== $name, $side"
	(cd test/cluster && KROLL_BENCH_COORDINATOR="$out/kroll-coordinator-$side" \
		"$out/cluster.test" -test.run '^$' -test.bench "$regex" -test.timeout 0 "$@") |
		tee "$out/$name-$side.txt"
}

for n in ${rows//,/ }; do
	for side in "${sides[@]}"; do
		KROLL_BENCH_AGENTS=$n bench "$side" "region-$n" '^BenchmarkRegionHeartbeats$' -test.benchtime 1x
	done
done
if [[ ${KROLL_BENCH_SLOT:-} == 1 ]]; then
	for side in "${sides[@]}"; do
		bench "$side" slot '^BenchmarkSlotThroughput$/^kroll$' -test.benchtime "${SLOT_BENCHTIME:-3s}"
	done
	if command -v etcd >/dev/null; then
		bench current slot-etcd '^BenchmarkSlotThroughput$/^etcd$' -test.benchtime "${SLOT_BENCHTIME:-3s}"
	else
		echo "== etcd is not installed (Debian package etcd-server): no etcd comparison"
	fi
fi

# The combined tables, from the benchmarks' metric lines.
echo
echo "## BenchmarkRegionHeartbeats — baseline $base_ref (${base_commit:0:12}) vs current ($(git describe --always --dirty))"
echo
echo "| agents | side | hb answered/s | shed/s | failed/s | skipped/s | lg late/s | hb p50 / p99 ms | slot ok/s | slot failed/s | slot p50 / p99 ms | RSS MiB c1 / c2 / c3 | CPU cores: nodes / load gen. | registrations/s |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
for n in ${rows//,/ }; do
	for side in "${sides[@]}"; do
		f=$out/region-$n-$side.txt
		awk -v n="$n" -v side="$side" '
			/^BenchmarkRegionHeartbeats\// {
				for (i = 3; i < NF; i += 2) m[$(i+1)] = $i
				found = 1
			}
			END {
				if (!found) { printf "| %s | %s | (no result: see the raw output) |\n", n, side; exit }
				printf "| %s | %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.1f / %.1f | %.1f | %.1f | %.1f / %.1f | %.0f / %.0f / %.0f | %.2f / %.2f | %.0f |\n",
					n, side, m["hb_answered/s"], m["hb_shed/s"], m["hb_failed/s"], m["hb_skipped/s"], m["hb_lg_late/s"],
					m["hb_p50_ms"], m["hb_p99_ms"], m["slot_ok/s"], m["slot_failed/s"], m["slot_p50_ms"], m["slot_p99_ms"],
					m["rss_mb_c1"], m["rss_mb_c2"], m["rss_mb_c3"], m["cpu_nodes"], m["cpu_loadgen"], m["registrations/s"]
			}' "$f"
	done
done
if [[ ${KROLL_BENCH_SLOT:-} == 1 ]]; then
	echo
	echo "## BenchmarkSlotThroughput"
	echo
	echo "| benchmark | side | pairs/s | p50 ms | p99 ms |"
	echo "|---|---|---|---|---|"
	for f in "$out"/slot-*.txt; do
		side=${f##*/slot-}
		side=${side%.txt}
		awk -v side="$side" '
			/^BenchmarkSlotThroughput\// {
				delete m
				for (i = 3; i < NF; i += 2) m[$(i+1)] = $i
				name = $1; sub(/-[0-9]+$/, "", name); sub(/^BenchmarkSlotThroughput\//, "", name)
				printf "| %s | %s | %.0f | %.1f | %.1f |\n", name, side, m["pairs/s"], m["p50-ms"], m["p99-ms"]
			}' "$f"
	done
fi
echo
echo "raw outputs and binaries: $out"
