//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * module-request: deny (enforce) or audit the kernel's requests to load a
 * module on demand (request_module, e.g. "algif-aead" when an AF_ALG
 * socket is bound to type "aead"), unless the requesting executable is
 * allow-listed. Requests made by kernel threads have the executable
 * {0, 0}.
 *
 * The deny map holds zero-padded names. A request matches an entry if the
 * whole name is in the map, or if the part of the name before its first
 * '(' is: the entry "crypto-authencesn" matches the request
 * "crypto-authencesn(hmac(sha256),cbc(aes))" (and its "-all" variant),
 * which is how the crypto API asks for a template instance. There is no
 * other prefix matching: "algif-aead" does not match "algif-aeadx".
 *
 * Events: name = the requested name; arg = 1 if it matched by the '('
 * rule, 0 if exactly.
 */
#include "kroll.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, struct kroll_name);
	__type(value, __u8);
} kroll_deny SEC(".maps");

/* kroll_cut copies name up to its first '(' into out; false if none. */
static __always_inline bool kroll_cut(const struct kroll_name *name, struct kroll_name *out)
{
#pragma unroll
	for (int i = 0; i < KROLL_NAME_LEN; i++) {
		char c = name->name[i];

		if (c == '(')
			return i > 0;
		if (c == 0)
			return false;
		out->name[i] = c;
	}
	return false;
}

SEC("lsm/kernel_module_request")
int BPF_PROG(kroll_module_request, char *kmod_name, int ret)
{
	struct kroll_name name = {}, prefix = {};
	struct kroll_config *cfg;
	__u64 by_prefix = 0;

	if (ret)
		return kroll_prev(ret);
	cfg = kroll_get_config(KROLL_OP_MODULE_REQUEST);
	if (!cfg)
		return 0;
	if (bpf_probe_read_kernel_str(name.name, sizeof(name.name), kmod_name) <= 0)
		return 0;
	if (!bpf_map_lookup_elem(&kroll_deny, &name)) {
		if (!kroll_cut(&name, &prefix) || !bpf_map_lookup_elem(&kroll_deny, &prefix))
			return 0;
		by_prefix = 1;
	}
	return kroll_decide(cfg, KROLL_KIND_MODULE_REQUEST, KROLL_OP_MODULE_REQUEST, by_prefix, &name);
}
