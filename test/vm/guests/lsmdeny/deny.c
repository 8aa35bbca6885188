//go:build ignore

// SPDX-License-Identifier: GPL-2.0
// Test fixture for the VM harness: a minimal bpf LSM program that denies
// creating AF_ALG sockets and counts the denials. It needs only UAPI
// headers, no vmlinux.h.
#include <linux/bpf.h>
#include <linux/errno.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define AF_ALG 38

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} denials SEC(".maps");

SEC("lsm/socket_create")
int BPF_PROG(deny_af_alg, int family, int type, int protocol, int kern, int ret)
{
	__u32 zero = 0;
	__u64 *n;

	if (ret != 0)
		return ret;
	if (family != AF_ALG || kern)
		return 0;
	n = bpf_map_lookup_elem(&denials, &zero);
	if (n)
		__sync_fetch_and_add(n, 1);
	return -EPERM;
}
