package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

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

func (a *app) snapshotCommand() *cobra.Command {
	return cli.Group("snapshot", "back up and restore the coordinators' replicated state",
		&cobra.Command{Use: use(snapshotSaveUsage), Short: "write the leader's state to FILE (operate)", Args: nArgs(1, snapshotSaveUsage),
			RunE: func(cmd *cobra.Command, args []string) error { return a.snapshotSaveCmd(cmd.Context(), args[0]) }},
		&cobra.Command{Use: use(snapshotRestoreUsage), Short: "replace the cluster's state with FILE's, through Raft (admin)", Args: nArgs(1, snapshotRestoreUsage),
			RunE: func(cmd *cobra.Command, args []string) error { return a.snapshotRestoreCmd(cmd.Context(), args[0]) }})
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

func (a *app) snapshotSaveCmd(ctx context.Context, path string) error {
	c, err := a.connect()
	if err != nil {
		return err
	}
	h, err := snapshotSave(ctx, c.client, path)
	if err != nil {
		return c.fail(err)
	}
	return c.show(h, func(w io.Writer) {
		fmt.Fprintf(w, "saved %s: %d bytes of state at Raft index %d (term %d) from %s, format v%d, sha256 %s\n",
			path, h.Size, h.Index, h.Term, printable(h.Node), h.FSMFormat, h.SHA256)
	})
}

func (a *app) snapshotRestoreCmd(ctx context.Context, path string) error {
	c, err := a.connect()
	if err != nil {
		return err
	}
	out, err := snapshotRestore(ctx, c.client, path)
	if err != nil {
		if errors.Is(err, snapshotfile.ErrInvalid) {
			return fmt.Errorf("refused, nothing sent: %w", err)
		}
		return c.fail(err)
	}
	return c.show(out, func(w io.Writer) {
		fmt.Fprintf(w, "restored %s (Raft index %d, term %d): %d datacenters, %d hosts; every member takes it from the leader\n",
			path, out.Index, out.Term, out.Datacenters, out.Hosts)
		if len(out.SlotsCarried) > 0 {
			fmt.Fprintf(w, "kept the reboot slots held now that the snapshot lacks: %s\n", strings.Join(out.SlotsCarried, ", "))
		}
	})
}
