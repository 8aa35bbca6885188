package gossip

import (
	"sort"
	"testing"
	"time"
)

// BenchmarkPushToAll measures how long a policy pushed at one member
// takes to be applied by every member of one datacenter's pool on
// loopback, with the package's default tuning ("tuned") and with
// memberlist's DefaultLANConfig values for the knobs the package changes
// ("memberlist-lan"). Each iteration is one push, waited for until all
// members applied it and all queues drained. Reported: p50 and p99 of
// the per-member delivery latency over all pushes (seconds from
// Broadcast to Deliver), the max time-to-all, and the bytes each member
// sent (UDP and TCP, counted at the transport) per second while idle
// (after the joins' membership gossip settled) and during the pushes,
// and per push.
func BenchmarkPushToAll(b *testing.B) {
	memberlistLAN := func(cfg *Config) {
		cfg.GossipNodes = 3
		cfg.RetransmitMult = 4
		cfg.PushPullInterval = 30 * time.Second
	}
	for _, bc := range []struct {
		name    string
		members int
		tune    func(*Config)
	}{
		{"tuned/members=50", 50, nil},
		{"tuned/members=150", 150, nil},
		{"tuned/members=300", 300, nil},
		{"memberlist-lan/members=300", 300, memberlistLAN},
	} {
		// The cluster lives in the outer sub-benchmark (run once) and is
		// shared by the inner one's runs (b.N = 1, then N).
		b.Run(bc.name, func(pb *testing.B) {
			var c *cluster
			var version int64
			pb.Run("push", func(sb *testing.B) {
				if c == nil {
					t0 := time.Now()
					c = buildCluster(sb, pb, "fra1", bc.members, bc.tune)
					sb.Logf("%d members up and joined in %v", bc.members, time.Since(t0).Round(time.Millisecond))
					// Let the joins' membership gossip settle (memberlist
					// retransmits every join to every member).
					t0 = time.Now()
					for time.Since(t0) < 90*time.Second {
						if c.bytesPerMemberPerSecond(time.Second) < 1000 {
							break
						}
					}
					sb.Logf("membership gossip settled after %v", time.Since(t0).Round(time.Second))
				}
				benchPushes(sb, c, bc.members, &version)
			})
		})
	}
}

// benchPushes pushes sb.N versions of a policy at members of c, one at a
// time, and reports the latencies and traffic.
func benchPushes(sb *testing.B, c *cluster, members int, version *int64) {
	idle := c.bytesPerMemberPerSecond(2 * time.Second)
	var lat []time.Duration
	var maxAll time.Duration
	p0, s0 := c.sentBytes()
	start := time.Now()
	sb.ResetTimer()
	for i := 0; i < sb.N; i++ {
		*version++
		origin := i * 7 % members
		t0 := c.push(origin, signedMessage(sb, trustedKey(), testPolicy("bench", *version)))
		last := c.waitApplied("bench", *version, 60*time.Second, nil)
		maxAll = max(maxAll, last.Sub(t0))
		for j, l := range c.loaders {
			if at, ok := l.deliveredAt("bench", *version); ok && j != origin {
				lat = append(lat, at.Sub(t0))
			}
		}
		c.waitQuiet(60 * time.Second)
	}
	sb.StopTimer()
	elapsed := time.Since(start)
	p1, s1 := c.sentBytes()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	sb.ReportMetric(lat[len(lat)/2].Seconds(), "p50-s")
	sb.ReportMetric(lat[len(lat)*99/100].Seconds(), "p99-s")
	sb.ReportMetric(maxAll.Seconds(), "max-s")
	sb.ReportMetric(idle, "idle-B/member/s")
	sent := float64(p1 - p0 + s1 - s0)
	sb.ReportMetric(sent/float64(members)/elapsed.Seconds(), "push-B/member/s")
	sb.ReportMetric(sent/float64(members)/float64(sb.N), "B/member/push")
}

// sentBytes sums the bytes the running members sent.
func (c *cluster) sentBytes() (packet, stream uint64) {
	for _, p := range c.pools {
		if p != nil {
			pk, st := p.transport.sentBytes()
			packet += pk
			stream += st
		}
	}
	return packet, stream
}

// bytesPerMemberPerSecond measures the members' traffic over d.
func (c *cluster) bytesPerMemberPerSecond(d time.Duration) float64 {
	p0, s0 := c.sentBytes()
	time.Sleep(d)
	p1, s1 := c.sentBytes()
	return float64(p1-p0+s1-s0) / float64(len(c.pools)) / d.Seconds()
}
