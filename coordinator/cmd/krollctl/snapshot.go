package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/kroll-dev/kroll/pkg/cli"
	"github.com/kroll-dev/kroll/pkg/client"
	"github.com/kroll-dev/kroll/pkg/fsutil"
	"github.com/kroll-dev/kroll/pkg/snapshotfile"
	"github.com/kroll-dev/kroll/pkg/wire"
)

const (
	snapshotSaveUsage    = "snapshot save FILE"
	snapshotRestoreUsage = "snapshot restore FILE"
)

func snapshotCommand() cli.Command {
	return group("snapshot", "back up and restore the coordinators' replicated state", map[string]cli.Command{
		"save":    {Usage: snapshotSaveUsage, Summary: "write the leader's state to FILE (operate)", Run: snapshotSaveCmd},
		"restore": {Usage: snapshotRestoreUsage, Summary: "replace the cluster's state with FILE's, through Raft (admin)", Run: snapshotRestoreCmd},
	})
}

// snapshotSave downloads the leader's state into path (replaced
// atomically, mode 0600), verified before it is written, and returns the
// file's header.
func snapshotSave(ctx context.Context, c *client.Client, path string) (snapshotfile.Header, error) {
	file, h, err := c.SnapshotSave(ctx)
	if err != nil {
		return h, err
	}
	if err := fsutil.WriteFileAtomic(path, file, 0o600, false); err != nil {
		return h, err
	}
	return h, nil
}

// snapshotRestore checks the snapshot file at path (format version, size,
// checksum) and sends it to be restored through Raft.
func snapshotRestore(ctx context.Context, c *client.Client, path string) (*wire.SnapshotRestored, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	file, err := io.ReadAll(io.LimitReader(f, snapshotfile.MaxHeaderSize+1+snapshotfile.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if _, _, err := snapshotfile.Read(bytes.NewReader(file), 0); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c.SnapshotRestore(ctx, file)
}

func snapshotSaveCmd(ctx context.Context, env cli.Env, args []string) error {
	c, pos, err := prepare(env, snapshotSaveUsage, args, 1, nil, nil)
	if err != nil {
		return err
	}
	h, err := snapshotSave(ctx, c.client, pos[0])
	if err != nil {
		return c.fail(err)
	}
	return c.show(h, func(w io.Writer) {
		fmt.Fprintf(w, "saved %s: %d bytes of state at Raft index %d (term %d) from %s, format v%d, sha256 %s\n",
			pos[0], h.Size, h.Index, h.Term, printable(h.Node), h.FSMFormat, h.SHA256)
	})
}

func snapshotRestoreCmd(ctx context.Context, env cli.Env, args []string) error {
	c, pos, err := prepare(env, snapshotRestoreUsage, args, 1, nil, nil)
	if err != nil {
		return err
	}
	out, err := snapshotRestore(ctx, c.client, pos[0])
	if err != nil {
		if errors.Is(err, snapshotfile.ErrInvalid) {
			return fmt.Errorf("refused, nothing sent: %w", err)
		}
		return c.fail(err)
	}
	return c.show(out, func(w io.Writer) {
		fmt.Fprintf(w, "restored %s (Raft index %d, term %d): %d datacenters, %d hosts; every member takes it from the leader\n",
			pos[0], out.Index, out.Term, out.Datacenters, out.Hosts)
	})
}
