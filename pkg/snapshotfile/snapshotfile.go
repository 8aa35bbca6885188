// Package snapshotfile is the file format of a coordinator backup, the
// body of GET and POST /v1/snapshot and what krollctl snapshot save
// writes: one line of JSON, the Header (magic, format version, the state
// machine's format version, Raft index and term, size and SHA-256 of the
// payload), then the payload, the state machine's snapshot, exactly Size
// bytes. Read refuses anything else: another magic or format version, a
// header that does not decode strictly, a payload shorter or longer than
// Size or with another checksum.
package snapshotfile

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kroll-dev/kroll/pkg/strictjson"
)

// Magic identifies a kroll snapshot file.
const Magic = "kroll-snapshot"

// Version is the file format version this code writes and reads.
const Version = 1

// MaxHeaderSize bounds the header line.
const MaxHeaderSize = 4096

// MaxSize bounds the payload Read accepts by default.
const MaxSize = 1 << 30

// ErrInvalid is wrapped by every error of Read about the file's content
// (as opposed to an error reading it).
var ErrInvalid = errors.New("not a valid kroll snapshot file")

// Header is the first line of a snapshot file.
type Header struct {
	Magic   string `json:"magic"`
	Version int    `json:"version"`
	// FSMFormat is the state machine's format version of the payload
	// (coordinator/fsm FormatVersion of the writer).
	FSMFormat int `json:"fsm_format"`
	// Index and Term are the Raft index and term the state covers.
	Index uint64 `json:"index"`
	Term  uint64 `json:"term"`
	// Node is the coordinator node that wrote it (the leader).
	Node    string    `json:"node"`
	Created time.Time `json:"created"`
	// Size and SHA256 (hex) describe the payload.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// Write writes h (Magic, Version, Size and SHA256 set from payload) and
// payload to w.
func Write(w io.Writer, h Header, payload []byte) error {
	sum := sha256.Sum256(payload)
	h.Magic, h.Version, h.Size, h.SHA256 = Magic, Version, int64(len(payload)), hex.EncodeToString(sum[:])
	line, err := strictjson.MarshalCanonical(h)
	if err != nil {
		return fmt.Errorf("snapshot header: %w", err)
	}
	if _, err := w.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if _, err := w.Write(payload); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

// Encode returns the file of h and payload (see Write).
func Encode(h Header, payload []byte) ([]byte, error) {
	var b bytes.Buffer
	if err := Write(&b, h, payload); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Read reads a whole snapshot file from r, payload at most maxSize bytes
// (MaxSize when maxSize ≤ 0), and returns its verified header and payload.
func Read(r io.Reader, maxSize int64) (Header, []byte, error) {
	if maxSize <= 0 {
		maxSize = MaxSize
	}
	var h Header
	br := bufio.NewReaderSize(r, MaxHeaderSize+1)
	line, err := br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return h, nil, fmt.Errorf("%w: no header line within %d bytes", ErrInvalid, MaxHeaderSize)
	case errors.Is(err, io.EOF):
		return h, nil, fmt.Errorf("%w: truncated header (%d bytes, no end of line)", ErrInvalid, len(line))
	case err != nil:
		return h, nil, fmt.Errorf("read snapshot: %w", err)
	}
	if err := strictjson.Decode(bytes.TrimSuffix(line, []byte("\n")), MaxHeaderSize, &h); err != nil {
		return h, nil, fmt.Errorf("%w: header: %w", ErrInvalid, err)
	}
	if err := h.check(maxSize); err != nil {
		return h, nil, err
	}
	payload := make([]byte, h.Size)
	if n, err := io.ReadFull(br, payload); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return h, nil, fmt.Errorf("%w: truncated: %d of %d payload bytes", ErrInvalid, n, h.Size)
		}
		return h, nil, fmt.Errorf("read snapshot: %w", err)
	}
	if n, _ := io.CopyN(io.Discard, br, 1); n != 0 {
		return h, nil, fmt.Errorf("%w: data after the %d payload bytes", ErrInvalid, h.Size)
	}
	sum := sha256.Sum256(payload)
	if got := hex.EncodeToString(sum[:]); got != h.SHA256 {
		return h, nil, fmt.Errorf("%w: checksum mismatch: payload sha256 %s, header says %s", ErrInvalid, got, h.SHA256)
	}
	return h, payload, nil
}

// check validates a decoded header.
func (h Header) check(maxSize int64) error {
	var errs []string
	if h.Magic != Magic {
		errs = append(errs, fmt.Sprintf("magic %q, want %q", h.Magic, Magic))
	} else if h.Version != Version {
		errs = append(errs, fmt.Sprintf("file format version %d: this version of kroll reads version %d", h.Version, Version))
	}
	if h.FSMFormat < 1 {
		errs = append(errs, fmt.Sprintf("fsm_format %d: want ≥ 1", h.FSMFormat))
	}
	if h.Size <= 0 || h.Size > maxSize {
		errs = append(errs, fmt.Sprintf("size %d: want 1 to %d bytes", h.Size, maxSize))
	}
	if b, err := hex.DecodeString(h.SHA256); err != nil || len(b) != sha256.Size {
		errs = append(errs, fmt.Sprintf("sha256 %q: want %d hex digits", h.SHA256, 2*sha256.Size))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: header: %s", ErrInvalid, strings.Join(errs, "; "))
	}
	return nil
}
