// Package gossip runs the agents' per-datacenter gossip pool (DESIGN §7),
// built on hashicorp/memberlist: one pool per datacenter, encrypted with a
// keyring, that
//
//  1. gives every agent a DC-local view of its peers (View): who is alive,
//     suspect, dead or left, and each member's Meta (host id, kernel,
//     phase, policy versions), used for the capacity floor;
//  2. disseminates signed mitigation-policy pushes (Broadcast) across the
//     datacenter within seconds, and lets a member that was down catch up
//     through memberlist's push-pull state sync.
//
// # Messages
//
// A Message carries a policy document and its detached signature. The
// pool never trusts a message: every message received by gossip or
// push-pull is decoded with a size bound (MaxMessageSize), checked for a
// known kind, deduplicated by (ID, Version) — a version equal to or older
// than the newest seen for its ID is dropped without further work — and
// then passed to Config.Accept, which verifies signature, version and
// target datacenter. Only accepted messages are delivered (Config.Deliver,
// one goroutine, at most once per (ID, Version)) and re-broadcast; drops
// are counted by reason (kroll_gossip_messages_dropped_total).
//
// Messages are encoded compactly (length-prefixed binary, DEFLATE when it
// helps) and queued in a memberlist.TransmitLimitedQueue, which bounds
// each message's transmissions (RetransmitMult·⌈log10(N+1)⌉) and lets a
// newer version of an ID replace queued older ones. The pool drains the
// queue itself every GossipInterval to GossipNodes random members:
// encodings up to 1100 bytes — a typical policy with its signature is
// about 360 — as UDP packets, larger ones (up to MaxMessageSize) over TCP
// streams. memberlist additionally piggybacks queued messages on its own
// UDP packets when they have room; it is not relied on, because its
// membership messages take precedence and, during churn, would delay a
// push by seconds. Push-pull carries the member's full current state
// (Config.State) over TCP as a backstop.
//
// # Tuning
//
// The zero-value tuning of Config is memberlist's DefaultLANConfig with
// these changes (the Default* constants):
//
//   - GossipInterval 200 ms (unchanged). Policy messages are sent by the
//     pool's own gossip loop (see Messages) to GossipNodes 4 random
//     members per round (memberlist: 3), so the informed set grows about
//     5-fold per round: log5(300) ≈ 3.5 rounds, under a second for a
//     300-member DC, leaving most of the 5 s goal for scheduling,
//     encryption and delivery;
//   - RetransmitMult 6 for policy messages (memberlist: 4): each member
//     transmits a message 6·⌈log10(N+1)⌉ times (18 at N = 300). With
//     N·18 transmissions to random members, the chance that a given
//     member is missed is about e^-18 ≈ 1.5e-8, so a push reaches every
//     member of a 300-member DC by gossip alone with probability
//     ≈ 1 - 5e-6 instead of ≈ 1 - 2e-3 with 12 transmissions. The cost
//     is a few KB per push per member, once; pushes are rare. Both
//     settings also apply to memberlist's membership gossip, where they
//     made joins converge much faster in tests (a member that misses an
//     alive message otherwise waits for a push-pull);
//   - PushPullInterval 15 s (memberlist: 30 s). memberlist scales it with
//     the pool size (×5 at 300 members, ×10 at 10,000), so a member that
//     missed a push catches up in about 75 s at 300 members even without
//     rejoining; a member that rejoins gets the current policies during
//     Join itself (the join is a push-pull). State syncs carry the member
//     list (metadata ≤ 512 bytes each, ours typically ~100) and the
//     current policies: tens of KB every 75 s per member.
//   - ProbeInterval 1 s, ProbeTimeout 500 ms, SuspicionMult 4 (unchanged):
//     a crashed host is suspected within about a second and declared dead
//     after 4·log10(N)·1 s (≈ 10 s at 300 members), fast enough for the
//     capacity view without false positives from GC pauses.
//   - DeadNodeReclaimTime 1 min (memberlist: never): a host whose address
//     changed can rejoin under its name once its old incarnation has been
//     dead for a minute.
//   - HandoffQueueDepth 4096 (memberlist: 1024): memberlist's queue of
//     received messages; when a whole DC starts at once the membership
//     burst otherwise overflows it and alive messages are dropped.
//   - EnableCompression off (memberlist: on): memberlist's per-packet LZW
//     was the largest CPU cost in profiles of a 150-member pool, for
//     little gain on 1400-byte LAN packets; messages are DEFLATEd by the
//     pool already.
//   - The memberlist label is "kroll/<datacenter>", so packets of another
//     datacenter's pool are rejected even with a shared key.
//
// Tests and benchmarks may set the tuning fields; the defaults are what
// the latency goal (≤ 5 s to 100% of 300 members of a DC) is about.
//
// # Security
//
// A pool refuses to start without a keyring (AES-GCM; Config.Insecure is
// for tests). Keys rotate without downtime: AddKey(new) on every member,
// then UseKey(new) on every member, then RemoveKey(old) on every member;
// a node holding only a removed key can no longer join. The keyring only
// keeps outsiders out of the pool: policies are trusted because Accept
// verifies their operator signatures, not because they came through the
// pool.
//
// # Metrics
//
// With Config.Registerer set: kroll_gossip_members{state} (gauge),
// kroll_gossip_broadcast_queue_depth (gauge),
// kroll_gossip_messages_dropped_total{reason},
// kroll_gossip_messages_delivered_total{via="gossip"|"pushpull"} and
// kroll_gossip_sent_bytes_total{transport="packet"|"stream"}. Policy
// propagation latency (from the policy's signed timestamp to in force) is
// measured by the agent in its Config.Deliver, after applying the policy.
package gossip
