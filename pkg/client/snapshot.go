package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/kroll-dev/kroll/pkg/buildinfo"
	"github.com/kroll-dev/kroll/pkg/snapshotfile"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// SnapshotSave downloads the leader's state as a snapshot file (see
// package snapshotfile) and returns the file, verified (format version,
// size, checksum), and its header. It needs role operate.
func (c *Client) SnapshotSave(ctx context.Context) ([]byte, snapshotfile.Header, error) {
	data, err := c.raw(ctx, http.MethodGet, wire.PathSnapshot, nil, "")
	if err != nil {
		return nil, snapshotfile.Header{}, err
	}
	h, _, err := snapshotfile.Read(bytes.NewReader(data), 0)
	if err != nil {
		return nil, h, fmt.Errorf("GET %s: %w", c.base+wire.PathSnapshot, err)
	}
	return data, h, nil
}

// SnapshotRestore sends a snapshot file to be restored through Raft and
// returns what the coordinator restored. It needs role admin. The
// coordinator checks the file as Read does and refuses it, changing
// nothing, when it is not valid.
func (c *Client) SnapshotRestore(ctx context.Context, file []byte) (*wire.SnapshotRestored, error) {
	data, err := c.raw(ctx, http.MethodPost, wire.PathSnapshot, file, "application/octet-stream")
	if err != nil {
		return nil, err
	}
	var out wire.SnapshotRestored
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("POST %s: decode response: %w", c.base+wire.PathSnapshot, err)
	}
	return &out, nil
}

// raw sends one request with a raw body, to the nodes in turn as do does
// (see Options.Fallbacks), and returns the raw 2xx body (at most a
// snapshot file's size); other answers become an *APIError.
func (c *Client) raw(ctx context.Context, method, path string, body []byte, contentType string) ([]byte, error) {
	var data []byte
	err := c.onNodes(ctx, method, func(base string) error {
		var err error
		data, err = c.rawOn(ctx, base, method, path, body, contentType)
		return err
	})
	return data, err
}

// rawOn sends raw's request to the node at base.
func (c *Client) rawOn(ctx context.Context, base, method, path string, body []byte, contentType string) ([]byte, error) {
	route := method + " " + path
	if len(c.bases) > 1 {
		route = base + " " + route
	}
	if err := c.gate(base, route); err != nil {
		return nil, err
	}
	target := base + path
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("User-Agent", "kroll/"+buildinfo.Version())
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return nil, fmt.Errorf("%s %s: %w", method, target, err)
	}
	defer resp.Body.Close()
	const limit = snapshotfile.MaxHeaderSize + 1 + snapshotfile.MaxSize
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read response: %w", method, target, err)
	}
	if len(data) > limit {
		return nil, fmt.Errorf("%s %s: response larger than %d bytes", method, target, limit)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		ae := decodeError(resp.StatusCode, data)
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			ae.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), c.now())
		}
		return nil, ae
	}
	return data, nil
}
