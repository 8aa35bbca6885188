package wire

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"strconv"
)

// HeartbeatDigestHeader carries HeartbeatDigest of a heartbeat's body.
// With HostIDHeader it lets a coordinator that sheds the heartbeat unread
// (429) tell whether the heartbeat carried anything durable: only one
// whose digest equals what the coordinator holds of the host may be shed
// by load and still count as hearing the host; one that changes
// something (a phase, a gossip view, a silent host coming back) is never
// shed by load.
const HeartbeatDigestHeader = "Kroll-Heartbeat-Digest"

// HeartbeatDigest summarises what of a heartbeat a coordinator keeps
// durably: the datacenter, kernel line (and assigned line) and kernel, phase, boot id, policy
// states, gossip address, and whether a gossip view comes with it and its
// out-of-service count (dead + draining + rebooting; the alive count is
// not kept). Equal digests mean equal durable fields (SHA-256, 128 bits,
// hex).
func HeartbeatDigest(hb Heartbeat) string {
	h := sha256.New()
	for _, s := range []string{hb.Datacenter, hb.KernelLine, hb.Kernel, hb.Phase, hb.BootID, hb.GossipAddr} {
		digestField(h, s)
	}
	digestField(h, strconv.Itoa(len(hb.Policies)))
	for _, p := range hb.Policies {
		digestField(h, p.ID)
		digestField(h, strconv.FormatInt(p.Version, 10))
		digestField(h, string(p.State))
		digestField(h, p.Detail)
	}
	if hb.View == nil {
		digestField(h, "-")
	} else {
		digestField(h, strconv.Itoa(hb.View.Dead+hb.View.Draining+hb.View.Rebooting))
	}
	if hb.AssignedLine != "" {
		// Only when set, so the digests of agents that follow no assigned
		// line stay what older coordinators compute.
		digestField(h, "assigned "+hb.AssignedLine)
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// digestField writes s length-prefixed, so that no two field lists share
// an encoding.
func digestField(h hash.Hash, s string) {
	h.Write([]byte(strconv.Itoa(len(s)) + ":" + s + ";"))
}
