//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * socket-family: deny (enforce) or audit creating and/or binding sockets of
 * one address family, unless the calling executable is allow-listed.
 *
 * config.family is the family, config.ops a mask of KROLL_OP_SOCKET_CREATE
 * and KROLL_OP_SOCKET_BIND. Sockets the kernel creates for itself
 * (socket_create's kern argument) are never denied. For bind, the family
 * is the socket's own (sk->__sk_common.skc_family), not the sockaddr's,
 * which the caller controls (af_alg's bind does not check it).
 *
 * Events: arg = family; name = the algorithm name (salg_name) for AF_ALG
 * binds, empty otherwise.
 */
#include "kroll.h"

#define KROLL_AF_ALG			38
#define KROLL_SOCKADDR_ALG_LEN		88	/* sizeof(struct sockaddr_alg) */
#define KROLL_SOCKADDR_ALG_NAME_OFF	24	/* offsetof(struct sockaddr_alg, salg_name) */

SEC("lsm/socket_create")
int BPF_PROG(kroll_socket_create, int family, int type, int protocol, int kern, int ret)
{
	struct kroll_config *cfg;

	if (ret)
		return kroll_prev(ret);
	if (kern)
		return 0;
	cfg = kroll_get_config(KROLL_OP_SOCKET_CREATE);
	if (!cfg || cfg->family != (__u32)family)
		return 0;
	return kroll_decide(cfg, KROLL_KIND_SOCKET_FAMILY, KROLL_OP_SOCKET_CREATE, family, NULL);
}

static __always_inline int kroll_bind_matched(struct kroll_config *cfg, __u32 family,
					      struct sockaddr *address, int addrlen)
{
	struct kroll_name name = {};

	if (family == KROLL_AF_ALG && addrlen >= KROLL_SOCKADDR_ALG_LEN)
		bpf_probe_read_kernel(name.name, sizeof(name.name) - 1,
				      (void *)address + KROLL_SOCKADDR_ALG_NAME_OFF);
	return kroll_decide(cfg, KROLL_KIND_SOCKET_FAMILY, KROLL_OP_SOCKET_BIND, family, &name);
}

SEC("lsm/socket_bind")
int BPF_PROG(kroll_socket_bind, struct socket *sock, struct sockaddr *address, int addrlen, int ret)
{
	struct kroll_config *cfg;
	struct sock *sk;
	__u32 family;

	if (ret)
		return kroll_prev(ret);
	cfg = kroll_get_config(KROLL_OP_SOCKET_BIND);
	if (!cfg)
		return 0;
	/* Hot path (every bind): direct, CO-RE-relocated loads through the
	 * hook's BTF-typed argument, no helper calls. Since 6.x the verifier
	 * marks socket->sk "trusted or NULL": it must be checked. */
	sk = sock->sk;
	if (!sk)
		return 0;
	family = sk->__sk_common.skc_family;
	if (cfg->family != family)
		return 0;
	return kroll_bind_matched(cfg, family, address, addrlen);
}
