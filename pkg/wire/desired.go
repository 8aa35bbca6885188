package wire

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"slices"
	"strings"
)

// desiredVersionDomain separates the desired-state hash from any other
// use of SHA-256 over the same bytes and versions the encoding.
const desiredVersionDomain = "kroll desired-state v1\x00"

// DesiredVersion returns the version of a desired state's documents: the
// hex SHA-256 of a canonical, length-prefixed encoding of the release (id,
// manifest, signature, or its absence) and of the policies sorted by id
// (id, version, document, signature). It depends only on those bytes, so
// every coordinator node computes the same version for the same replicated
// state.
func DesiredVersion(rel *SignedRelease, policies []SignedPolicy) string {
	h := sha256.New()
	var n [8]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	h.Write([]byte(desiredVersionDomain))
	if rel == nil {
		h.Write([]byte{0})
	} else {
		h.Write([]byte{1})
		field([]byte(rel.ID))
		field(rel.Manifest)
		field(rel.Signature)
	}
	ps := slices.Clone(policies)
	slices.SortStableFunc(ps, func(a, b SignedPolicy) int { return strings.Compare(a.ID, b.ID) })
	binary.BigEndian.PutUint64(n[:], uint64(len(ps)))
	h.Write(n[:])
	for _, p := range ps {
		field([]byte(p.ID))
		binary.BigEndian.PutUint64(n[:], uint64(p.Version))
		h.Write(n[:])
		field([]byte(p.Document))
		field(p.Signature)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// ValidDesiredVersion reports whether v can be a DesiredVersion: empty or
// 64 lower-case hex digits.
func ValidDesiredVersion(v string) bool {
	if v == "" {
		return true
	}
	if len(v) != 2*sha256.Size {
		return false
	}
	for _, c := range v {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
