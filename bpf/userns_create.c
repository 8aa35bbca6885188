//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * userns-create: deny (enforce) or audit creating user namespaces
 * (unshare and clone with CLONE_NEWUSER) by tasks without CAP_SYS_ADMIN in
 * the initial user namespace, unless the executable is allow-listed.
 *
 * The hook (security_create_user_ns, since Linux 6.1) gets the creating
 * task's credentials: "privileged" means cred->user_ns is the initial
 * namespace (level 0) and CAP_SYS_ADMIN is in cap_effective. kernel_cap_t
 * is struct { __u32 cap[2]; } up to 6.2 and struct { u64 val; } since
 * 6.3; both are 8 bytes with capability 21 in the first 32 bits (little
 * endian), so the program reads 8 bytes at cap_effective's (CO-RE)
 * offset instead of naming either member.
 *
 * Events: arg = the creating task's effective capabilities.
 */
#include "kroll.h"

#define KROLL_CAP_SYS_ADMIN	21

SEC("lsm/userns_create")
int BPF_PROG(kroll_userns_create, const struct cred *cred, int ret)
{
	struct kroll_config *cfg;
	__u64 caps = 0;
	int level;

	if (ret)
		return kroll_prev(ret);
	cfg = kroll_get_config(KROLL_OP_USERNS_CREATE);
	if (!cfg)
		return 0;
	bpf_core_read(&caps, sizeof(caps), &cred->cap_effective);
	level = BPF_CORE_READ(cred, user_ns, level);
	if (level == 0 && (caps & (1ull << KROLL_CAP_SYS_ADMIN)))
		return 0;
	return kroll_decide(cfg, KROLL_KIND_USERNS_CREATE, KROLL_OP_USERNS_CREATE, caps, NULL);
}
