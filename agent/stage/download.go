package stage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kroll-dev/kroll/pkg/fsutil"
	"github.com/kroll-dev/kroll/pkg/release"
)

// retryableError marks a download failure worth retrying: a network error
// or a 5xx response.
type retryableError struct{ err error }

// Error implements error.
func (e *retryableError) Error() string { return e.err.Error() }

// Unwrap returns the underlying error.
func (e *retryableError) Unwrap() error { return e.err }

// fetch downloads artifact a into dir/<name>, resuming dir/<name>.part,
// and verifies its size and sha256. It returns the final path.
func (s *Stager) fetch(ctx context.Context, dir string, a release.Artifact) (string, error) {
	final := filepath.Join(dir, a.Name)
	if ok, err := fileMatches(final, a); err != nil {
		return "", err
	} else if ok {
		return final, nil
	}
	part := final + ".part"
	var err error
	for attempt := 0; ; attempt++ {
		err = s.fetchOnce(ctx, a, part)
		var re *retryableError
		if err == nil || !errors.As(err, &re) || attempt >= s.cfg.MaxRetries || ctx.Err() != nil {
			break
		}
		delay := min(s.cfg.Backoff<<attempt, maxBackoff)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return "", fmt.Errorf("download %s: %w (after: %w)", a.Name, ctx.Err(), err)
		case <-t.C:
		}
	}
	if err != nil {
		return "", fmt.Errorf("download %s: %w", a.Name, err)
	}
	ok, err := fileMatches(part, a)
	if err != nil {
		return "", err
	}
	if !ok {
		_ = os.Remove(part)
		return "", fmt.Errorf("download %s: sha256 or size does not match the manifest (want %d bytes, sha256 %s); partial file removed", a.Name, a.Size, a.SHA256)
	}
	if err := os.Rename(part, final); err != nil {
		return "", fmt.Errorf("download %s: %w", a.Name, err)
	}
	if err := fsutil.SyncDir(dir); err != nil {
		return "", fmt.Errorf("download %s: %w", a.Name, err)
	}
	return final, nil
}

// fileMatches reports whether path exists with a's size and sha256.
func fileMatches(path string, a release.Artifact) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("verify %s: %w", a.Name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("verify %s: %w", a.Name, err)
	}
	if !fi.Mode().IsRegular() || fi.Size() != a.Size {
		return false, nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, fmt.Errorf("verify %s: %w", a.Name, err)
	}
	return hex.EncodeToString(h.Sum(nil)) == a.SHA256, nil
}

// fetchOnce makes one download attempt, appending to part from its current
// size. It never writes beyond a.Size bytes.
func (s *Stager) fetchOnce(ctx context.Context, a release.Artifact, part string) (err error) {
	f, err := os.OpenFile(part, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	off := fi.Size()
	if off > a.Size {
		if err := f.Truncate(0); err != nil {
			return err
		}
		off = 0
	}
	if off == a.Size {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL, nil)
	if err != nil {
		return err
	}
	if off > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-")
	}
	resp, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return &retryableError{err}
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent && off > 0:
		start, err := contentRangeStart(resp.Header.Get("Content-Range"))
		if err != nil {
			return err
		}
		if start != off {
			return &retryableError{fmt.Errorf("server resumed at byte %d, asked for %d", start, off)}
		}
	case resp.StatusCode == http.StatusOK:
		// The server ignored the Range header: start over.
		if err := f.Truncate(0); err != nil {
			return err
		}
		off = 0
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		// The partial file is not a prefix of the artifact: start over.
		if err := f.Truncate(0); err != nil {
			return err
		}
		return &retryableError{fmt.Errorf("GET %s: %s", a.URL, resp.Status)}
	case resp.StatusCode >= 500:
		return &retryableError{fmt.Errorf("GET %s: %s", a.URL, resp.Status)}
	default:
		return fmt.Errorf("GET %s: unexpected %s", a.URL, resp.Status)
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return err
	}
	want := a.Size - off
	n, err := io.Copy(f, io.LimitReader(resp.Body, want+1))
	if n > want {
		_ = f.Truncate(a.Size)
		return fmt.Errorf("GET %s: body exceeds the declared size of %d bytes", a.URL, a.Size)
	}
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		return &retryableError{fmt.Errorf("GET %s: after %d of %d bytes: %w", a.URL, off+n, a.Size, err)}
	}
	if n < want {
		return &retryableError{fmt.Errorf("GET %s: body ended after %d of %d bytes", a.URL, off+n, a.Size)}
	}
	return f.Sync()
}

// contentRangeStart parses the first byte position of a Content-Range
// header "bytes START-END/SIZE".
func contentRangeStart(h string) (int64, error) {
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, fmt.Errorf("malformed Content-Range %q", h)
	}
	startS, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, fmt.Errorf("malformed Content-Range %q", h)
	}
	start, err := strconv.ParseInt(startS, 10, 64)
	if err != nil || start < 0 {
		return 0, fmt.Errorf("malformed Content-Range %q", h)
	}
	return start, nil
}
