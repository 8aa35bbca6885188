//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * probe: proves that bpf LSM programs run on this kernel. It never denies
 * anything; it counts socket_create calls of one process (probe_tgid, set
 * at load time) in hits. A kernel can load and attach LSM programs
 * without running them (bpf missing from the lsm= boot parameter), so
 * loading is not proof; a hit is.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

volatile const __u32 probe_tgid;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} kroll_hits SEC(".maps");

SEC("lsm/socket_create")
int BPF_PROG(kroll_probe, int family, int type, int protocol, int kern, int ret)
{
	__u32 zero = 0;
	__u64 *n;

	if ((bpf_get_current_pid_tgid() >> 32) == probe_tgid) {
		n = bpf_map_lookup_elem(&kroll_hits, &zero);
		if (n)
			__sync_fetch_and_add(n, 1);
	}
	if (ret < -4095 || ret > 0)
		return -1;
	return ret;
}
