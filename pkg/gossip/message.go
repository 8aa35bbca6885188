package gossip

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
)

// KindPolicy is the Kind of a signed mitigation policy message, the only
// kind pools disseminate for now. Messages of other kinds are dropped.
const KindPolicy = "policy"

// MaxMessageSize is the largest message a pool disseminates, measured as
// its uncompressed wire encoding (kind, ID, version, document and
// signature plus a few bytes of framing, see Message.Size). Larger
// messages are dropped on receipt and Broadcast refuses them.
const MaxMessageSize = 16 << 10

// Limits of the push-pull state (see Config.State): a remote state with
// more messages or more bytes is rejected as a whole, and LocalState
// sends at most this many messages (those with the smallest IDs).
const (
	maxStateMessages = 1024
	maxStateBytes    = 4 << 20
)

// Wire format version bytes.
const (
	wireVersion    = 1
	wireCompressed = 0x80
)

// Errors returned (wrapped) by Broadcast and message decoding.
var (
	// ErrTooLarge is returned for a message over MaxMessageSize.
	ErrTooLarge = errors.New("message too large")
	// ErrUnknownKind is returned for a message whose Kind is not KindPolicy.
	ErrUnknownKind = errors.New("unknown message kind")
	// ErrInvalid is returned for a message without ID or with a
	// non-positive version.
	ErrInvalid = errors.New("invalid message")
	// ErrStale is returned by Broadcast for a message older than the
	// newest version of its ID this pool has seen.
	ErrStale = errors.New("message older than the newest seen version")
	// errMalformed is a message that cannot be decoded.
	errMalformed = errors.New("malformed message")
)

// Message is a signed document disseminated through a pool.
type Message struct {
	// Kind is what the message carries: KindPolicy; unknown kinds are
	// dropped.
	Kind string `json:"kind"`
	// ID is the policy ID.
	ID string `json:"id"`
	// Version is the policy version; a pool delivers each (ID, Version)
	// at most once and drops versions older than the newest it has seen.
	Version int64 `json:"version"`
	// Document is the policy document as signed (YAML or JSON).
	Document []byte `json:"document"`
	// Signature is the detached signature file content (JSON).
	Signature []byte `json:"signature"`
}

// Size returns the size of m's uncompressed wire encoding, the size
// MaxMessageSize limits.
func (m Message) Size() int {
	return len(m.body())
}

// check validates m's kind, ID, version and size.
func (m Message) check() error {
	if m.Kind != KindPolicy {
		return fmt.Errorf("message %q: %w %q", m.ID, ErrUnknownKind, m.Kind)
	}
	if m.ID == "" || m.Version <= 0 {
		return fmt.Errorf("message %q version %d: %w: needs an ID and a positive version", m.ID, m.Version, ErrInvalid)
	}
	if n := m.Size(); n > MaxMessageSize {
		return fmt.Errorf("message %q version %d: %w: %d bytes, limit is %d", m.ID, m.Version, ErrTooLarge, n, MaxMessageSize)
	}
	return nil
}

// body is the uncompressed encoding of m: length-prefixed kind, ID,
// document and signature and the zig-zag varint version.
func (m Message) body() []byte {
	b := make([]byte, 0, len(m.Kind)+len(m.ID)+len(m.Document)+len(m.Signature)+4*binary.MaxVarintLen32+binary.MaxVarintLen64)
	b = appendBytes(b, []byte(m.Kind))
	b = appendBytes(b, []byte(m.ID))
	b = binary.AppendVarint(b, m.Version)
	b = appendBytes(b, m.Document)
	b = appendBytes(b, m.Signature)
	return b
}

func appendBytes(b, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encodeMessage returns m's wire encoding: a version byte, then the body,
// compressed with DEFLATE when that makes it smaller. It does not check m.
func encodeMessage(m Message) []byte {
	return encodeFrame(m.body())
}

// encodeFrame prefixes body with the version byte, compressing it when
// that saves space.
func encodeFrame(body []byte) []byte {
	var buf bytes.Buffer
	buf.WriteByte(wireVersion | wireCompressed)
	w, err := flate.NewWriter(&buf, flate.BestCompression)
	if err == nil {
		_, err = w.Write(body)
	}
	if err == nil {
		err = w.Close()
	}
	if err == nil && buf.Len() < len(body)+1 {
		return buf.Bytes()
	}
	return append([]byte{wireVersion}, body...)
}

// decodeFrame returns the body of a frame, decompressed, refusing bodies
// over limit (wrapping ErrTooLarge).
func decodeFrame(frame []byte, limit int) ([]byte, error) {
	if len(frame) == 0 {
		return nil, fmt.Errorf("%w: empty", errMalformed)
	}
	switch frame[0] {
	case wireVersion:
		if len(frame)-1 > limit {
			return nil, fmt.Errorf("%w: %d bytes, limit is %d", ErrTooLarge, len(frame)-1, limit)
		}
		return frame[1:], nil
	case wireVersion | wireCompressed:
		r := flate.NewReader(bytes.NewReader(frame[1:]))
		defer r.Close()
		body, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
		if err != nil {
			return nil, fmt.Errorf("%w: decompress: %w", errMalformed, err)
		}
		if len(body) > limit {
			return nil, fmt.Errorf("%w: over %d bytes uncompressed", ErrTooLarge, limit)
		}
		return body, nil
	default:
		return nil, fmt.Errorf("%w: unknown format 0x%02x", errMalformed, frame[0])
	}
}

// decodeMessage decodes a wire encoding. Errors wrap ErrTooLarge or
// errMalformed.
func decodeMessage(wire []byte) (Message, error) {
	body, err := decodeFrame(wire, MaxMessageSize)
	if err != nil {
		return Message{}, fmt.Errorf("decode message: %w", err)
	}
	r := reader{b: body}
	var m Message
	m.Kind = string(r.bytes())
	m.ID = string(r.bytes())
	m.Version = r.varint()
	m.Document = r.bytes()
	m.Signature = r.bytes()
	if r.err != nil {
		return Message{}, fmt.Errorf("decode message: %w", r.err)
	}
	if len(r.b) != 0 {
		return Message{}, fmt.Errorf("decode message: %w: %d trailing bytes", errMalformed, len(r.b))
	}
	return m, nil
}

// reader decodes the length-prefixed encodings; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = fmt.Errorf("%w: bad varint", errMalformed)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = fmt.Errorf("%w: bad varint", errMalformed)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.err = fmt.Errorf("%w: field of %d bytes exceeds the remaining %d", errMalformed, n, len(r.b))
		return nil
	}
	s := bytes.Clone(r.b[:n])
	r.b = r.b[n:]
	return s
}

// encodeState encodes the push-pull state: the count, then each message's
// wire encoding, length-prefixed, in ID order; at most maxStateMessages
// and maxStateBytes (further messages are left out).
func encodeState(msgs []Message) (state []byte, skipped int) {
	msgs = append([]Message(nil), msgs...)
	sort.Slice(msgs, func(i, j int) bool {
		if msgs[i].ID != msgs[j].ID {
			return msgs[i].ID < msgs[j].ID
		}
		return msgs[i].Version < msgs[j].Version
	})
	var wires [][]byte
	total := 0
	for _, m := range msgs {
		if err := m.check(); err != nil || len(wires) == maxStateMessages {
			skipped++
			continue
		}
		w := encodeMessage(m)
		if total+len(w)+binary.MaxVarintLen32 > maxStateBytes-binary.MaxVarintLen32 {
			skipped++
			continue
		}
		total += len(w) + binary.MaxVarintLen32
		wires = append(wires, w)
	}
	body := binary.AppendUvarint(make([]byte, 0, total+binary.MaxVarintLen32), uint64(len(wires)))
	for _, w := range wires {
		body = appendBytes(body, w)
	}
	return encodeFrame(body), skipped
}

// decodeState decodes a push-pull state into message wire encodings,
// rejecting states over maxStateBytes or maxStateMessages.
func decodeState(state []byte) ([][]byte, error) {
	if len(state) == 0 {
		return nil, nil
	}
	body, err := decodeFrame(state, maxStateBytes)
	if err != nil {
		return nil, fmt.Errorf("decode state: %w", err)
	}
	r := reader{b: body}
	n := r.uvarint()
	if r.err == nil && n > maxStateMessages {
		return nil, fmt.Errorf("decode state: %w: %d messages, limit is %d", ErrTooLarge, n, maxStateMessages)
	}
	wires := make([][]byte, 0, n)
	for i := uint64(0); i < n && r.err == nil; i++ {
		wires = append(wires, r.bytes())
	}
	if r.err != nil {
		return nil, fmt.Errorf("decode state: %w", r.err)
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("decode state: %w: %d trailing bytes", errMalformed, len(r.b))
	}
	return wires, nil
}
