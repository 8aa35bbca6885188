//go:build ignore

// SPDX-License-Identifier: GPL-2.0
/*
 * file-open: deny (enforce) or audit opening the files whose (dev, ino),
 * as struct kroll_key, are in the deny map, unless the opening executable
 * is allow-listed. Matching is by inode, so hard links, renames and bind
 * mounts of a denied file are denied too.
 *
 * Events: arg = the file's inode number; name = its dentry name.
 */
#include "kroll.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct kroll_key);
	__type(value, __u8);
} kroll_deny SEC(".maps");

SEC("lsm/file_open")
int BPF_PROG(kroll_file_open, struct file *file, int ret)
{
	struct kroll_key key = {};
	struct kroll_name name = {};
	struct kroll_config *cfg;

	if (ret)
		return kroll_prev(ret);
	cfg = kroll_get_config(KROLL_OP_FILE_OPEN);
	if (!cfg)
		return 0;
	/* Hot path (every open): direct, CO-RE-relocated loads through the
	 * hook's BTF-typed argument, no helper calls. */
	key.dev = file->f_inode->i_sb->s_dev;
	key.ino = file->f_inode->i_ino;
	if (!bpf_map_lookup_elem(&kroll_deny, &key))
		return 0;
	bpf_probe_read_kernel_str(name.name, sizeof(name.name),
				  BPF_CORE_READ(file, f_path.dentry, d_name.name));
	return kroll_decide(cfg, KROLL_KIND_FILE_OPEN, KROLL_OP_FILE_OPEN, key.ino, &name);
}
