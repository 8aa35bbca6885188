package gossip

import (
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/hashicorp/memberlist"
)

// Field length caps of the Meta encoding; longer values are cut.
const (
	maxMetaHostID = 64
	maxMetaKernel = 64
	maxMetaPhase  = 32
	metaVersion   = 1
	metaTruncated = 0x80 // the policy list was cut
	metaLeaving   = 0x40 // the member is leaving the pool (Pool.Leave)
)

// Meta is a member's node metadata, gossiped with its membership. Its
// encoding fits memberlist's MetaMaxSize (512 bytes): a version byte,
// HostID, Kernel and Phase (cut to 64, 64 and 32 bytes), then the policy
// versions in ID order, as many as fit; when some are left out the
// decoded Meta has Truncated set. The encoding is deterministic: it
// depends only on the values, not on map order.
type Meta struct {
	// HostID is the member's host id (normally its node name).
	HostID string
	// Kernel is the running kernel release.
	Kernel string
	// Phase is the agent's phase, e.g. "ready", "draining", "rebooting".
	Phase string
	// Policies maps policy IDs to the versions in force on the member.
	Policies map[string]int64
	// Truncated is set on a decoded Meta whose policy list did not fit
	// the size limit and was cut (the IDs sorting last are missing). It
	// is ignored when encoding.
	Truncated bool
}

// encodeMeta encodes m in at most limit bytes (never more than
// memberlist.MetaMaxSize), with the leaving flag.
func encodeMeta(m Meta, leaving bool, limit int) []byte {
	limit = min(limit, memberlist.MetaMaxSize)
	head := []byte{metaVersion}
	if leaving {
		head[0] |= metaLeaving
	}
	head = appendBytes(head, []byte(cut(m.HostID, maxMetaHostID)))
	head = appendBytes(head, []byte(cut(m.Kernel, maxMetaKernel)))
	head = appendBytes(head, []byte(cut(m.Phase, maxMetaPhase)))
	if len(head) > limit {
		return nil
	}
	ids := make([]string, 0, len(m.Policies))
	for id := range m.Policies {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	var entries []byte
	n := 0
	for _, id := range ids {
		e := appendBytes(nil, []byte(id))
		e = binary.AppendVarint(e, m.Policies[id])
		// Reserve room for the count varint of n+1 entries.
		if len(head)+binary.MaxVarintLen16+len(entries)+len(e) > limit {
			break
		}
		entries = append(entries, e...)
		n++
	}
	if n < len(ids) {
		head[0] |= metaTruncated
	}
	out := binary.AppendUvarint(head, uint64(n))
	return append(out, entries...)
}

// cut shortens s to at most n bytes.
func cut(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// decodeMeta decodes an encodeMeta encoding and its leaving flag.
func decodeMeta(b []byte) (m Meta, leaving bool, err error) {
	if len(b) == 0 {
		return Meta{}, false, nil
	}
	if b[0]&^(metaTruncated|metaLeaving) != metaVersion {
		return Meta{}, false, fmt.Errorf("decode meta: %w: unknown format 0x%02x", errMalformed, b[0])
	}
	m.Truncated = b[0]&metaTruncated != 0
	leaving = b[0]&metaLeaving != 0
	r := reader{b: b[1:]}
	m.HostID = string(r.bytes())
	m.Kernel = string(r.bytes())
	m.Phase = string(r.bytes())
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)) {
		return Meta{}, false, fmt.Errorf("decode meta: %w: %d policies in %d bytes", errMalformed, n, len(r.b))
	}
	if n > 0 {
		m.Policies = make(map[string]int64, n)
	}
	for i := uint64(0); i < n && r.err == nil; i++ {
		id := string(r.bytes())
		m.Policies[id] = r.varint()
	}
	if r.err != nil {
		return Meta{}, false, fmt.Errorf("decode meta: %w", r.err)
	}
	if len(r.b) != 0 {
		return Meta{}, false, fmt.Errorf("decode meta: %w: %d trailing bytes", errMalformed, len(r.b))
	}
	return m, leaving, nil
}
