/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared part of kroll's bpf-lsm mitigation programs: the maps every
 * program has (config, allow, events, counters) and the decision helper.
 *
 * Layouts here are mirrored by package bpf (bpf.go); change both together.
 *
 * Each program object gets its own copy of these maps: a policy's mode,
 * allow-list and counters are per loaded program.
 */
#ifndef KROLL_H
#define KROLL_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define KROLL_EPERM	1
#define KROLL_MAX_ERRNO	4095

/* Modes (struct kroll_config.mode). */
#define KROLL_AUDIT	0	/* allow, count, emit an event */
#define KROLL_ENFORCE	1	/* deny with -EPERM, count, emit an event */

/* Kinds (struct kroll_event.kind), one per program object. */
#define KROLL_KIND_SOCKET_FAMILY	1
#define KROLL_KIND_MODULE_REQUEST	2
#define KROLL_KIND_USERNS_CREATE	3
#define KROLL_KIND_FILE_OPEN		4

/*
 * Operations: bits of struct kroll_config.ops (a program acts only on the
 * operations whose bit is set, so an all-zero config is inert) and the
 * value of struct kroll_event.op (exactly one bit).
 */
#define KROLL_OP_SOCKET_CREATE	(1u << 0)
#define KROLL_OP_SOCKET_BIND	(1u << 1)
#define KROLL_OP_MODULE_REQUEST	(1u << 2)
#define KROLL_OP_USERNS_CREATE	(1u << 3)
#define KROLL_OP_FILE_OPEN	(1u << 4)

#define KROLL_NAME_LEN	64

char LICENSE[] SEC("license") = "GPL";

/* The only entry of the config map. */
struct kroll_config {
	__u32 mode;
	__u32 ops;
	__u32 family;	/* socket-family: the address family (AF_*) */
	__u32 _pad;
};

/*
 * An inode as the kernel names it: the superblock's dev_t (kernel
 * encoding, MKDEV(major, minor) = major << 20 | minor) and i_ino.
 */
struct kroll_key {
	__u64 dev;
	__u64 ino;
};

/* A zero-padded name: module-request keys and event names. */
struct kroll_name {
	char name[KROLL_NAME_LEN];
};

/* One ring buffer record; 136 bytes, no implicit padding. */
struct kroll_event {
	__u64 ts;		/* bpf_ktime_get_ns (CLOCK_MONOTONIC) */
	__u32 pid;		/* thread group id */
	__u32 uid;		/* real uid in the initial user namespace */
	__u32 kind;		/* KROLL_KIND_* */
	__u32 op;		/* KROLL_OP_* */
	__s32 verdict;		/* 0: allowed (audit), -EPERM: denied */
	__u32 _pad;
	__u64 exe_dev;		/* current->mm->exe_file, as struct kroll_key */
	__u64 exe_ino;
	__u64 arg;		/* kind-specific, see the program */
	char comm[16];
	char name[KROLL_NAME_LEN];	/* kind-specific, zero-padded */
};

_Static_assert(sizeof(struct kroll_event) == 136, "struct kroll_event: bpf.EventSize");
_Static_assert(__builtin_offsetof(struct kroll_event, exe_dev) == 32, "struct kroll_event layout");
_Static_assert(__builtin_offsetof(struct kroll_event, comm) == 56, "struct kroll_event layout");
_Static_assert(__builtin_offsetof(struct kroll_event, name) == 72, "struct kroll_event layout");

/* Per-CPU counters, the only entry of the counters map. */
struct kroll_counters {
	__u64 allowed;	/* matched, but the executable is allow-listed */
	__u64 audited;	/* matched in audit mode: allowed, event emitted */
	__u64 denied;	/* matched in enforce mode: -EPERM, event emitted */
	__u64 lost;	/* events dropped because the ring buffer was full */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kroll_config);
} kroll_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct kroll_key);
	__type(value, __u8);
} kroll_allow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} kroll_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct kroll_counters);
} kroll_counters SEC(".maps");

/* kroll_get_config returns the program's configuration if op is enabled. */
static __always_inline struct kroll_config *kroll_get_config(__u32 op)
{
	__u32 zero = 0;
	struct kroll_config *cfg = bpf_map_lookup_elem(&kroll_config, &zero);

	if (!cfg || !(cfg->ops & op))
		return NULL;
	return cfg;
}

/*
 * kroll_prev passes on the verdict of an earlier program or LSM (LSM
 * programs are chained: the hook's last argument is the return value so
 * far). Newer kernels require an LSM program's return value to lie in
 * [-MAX_ERRNO, 0]; anything else becomes -EPERM.
 */
static __always_inline int kroll_prev(int ret)
{
	if (ret < -KROLL_MAX_ERRNO || ret > 0)
		return -KROLL_EPERM;
	return ret;
}

/* kroll_inode_key fills key with an inode's (s_dev, i_ino). */
static __always_inline void kroll_inode_key(struct inode *inode, struct kroll_key *key)
{
	key->dev = BPF_CORE_READ(inode, i_sb, s_dev);
	key->ino = BPF_CORE_READ(inode, i_ino);
}

/*
 * kroll_exe_key fills key with the current task's executable,
 * current->mm->exe_file->f_inode; {0, 0} for kernel threads.
 */
static __always_inline void kroll_exe_key(struct kroll_key *key)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct inode *inode = BPF_CORE_READ(task, mm, exe_file, f_inode);

	if (inode)
		kroll_inode_key(inode, key);
}

static __always_inline void kroll_count(int what)
{
	__u32 zero = 0;
	struct kroll_counters *c = bpf_map_lookup_elem(&kroll_counters, &zero);

	if (!c)
		return;
	switch (what) {
	case 0:
		__sync_fetch_and_add(&c->allowed, 1);
		break;
	case 1:
		__sync_fetch_and_add(&c->audited, 1);
		break;
	case 2:
		__sync_fetch_and_add(&c->denied, 1);
		break;
	default:
		__sync_fetch_and_add(&c->lost, 1);
	}
}

#define KROLL_COUNT_ALLOWED	0
#define KROLL_COUNT_AUDITED	1
#define KROLL_COUNT_DENIED	2
#define KROLL_COUNT_LOST	3

/*
 * kroll_decide is called once an operation matched the policy: it lets
 * allow-listed executables through (counted as allowed, no event), and
 * otherwise counts, emits an event and returns the mode's verdict.
 * name, if not NULL, points to KROLL_NAME_LEN bytes for the event.
 */
static __always_inline int kroll_decide(struct kroll_config *cfg, __u32 kind, __u32 op,
					__u64 arg, const struct kroll_name *name)
{
	struct kroll_key exe = {};
	struct kroll_event *e;
	int verdict;

	kroll_exe_key(&exe);
	if (bpf_map_lookup_elem(&kroll_allow, &exe)) {
		kroll_count(KROLL_COUNT_ALLOWED);
		return 0;
	}
	verdict = cfg->mode == KROLL_ENFORCE ? -KROLL_EPERM : 0;
	kroll_count(verdict ? KROLL_COUNT_DENIED : KROLL_COUNT_AUDITED);

	e = bpf_ringbuf_reserve(&kroll_events, sizeof(*e), 0);
	if (!e) {
		kroll_count(KROLL_COUNT_LOST);
		return verdict;
	}
	e->ts = bpf_ktime_get_ns();
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->kind = kind;
	e->op = op;
	e->verdict = verdict;
	e->_pad = 0;
	e->exe_dev = exe.dev;
	e->exe_ino = exe.ino;
	e->arg = arg;
	__builtin_memset(e->comm, 0, sizeof(e->comm));
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	if (name)
		__builtin_memcpy(e->name, name->name, sizeof(e->name));
	else
		__builtin_memset(e->name, 0, sizeof(e->name));
	bpf_ringbuf_submit(e, 0);
	return verdict;
}

#endif /* KROLL_H */
