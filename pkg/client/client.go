// Package client is a small typed HTTP client of the kroll coordinator's
// API: the operator routes krollctl uses, the agent routes and the
// FleetLock routes, one method per route of package wire.
//
// Every non-2xx response becomes an *APIError carrying the wire.Error kind
// and value. A bearer token is never sent in clear text off the local
// machine: New refuses an http:// base URL with a token unless its host is
// a loopback address.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/kroll-dev/kroll/pkg/buildinfo"
	"github.com/kroll-dev/kroll/pkg/wire"
)

// MaxResponseSize bounds every response body the client reads.
const MaxResponseSize = 16 << 20

// DefaultTimeout bounds a whole request (connect, send, receive) when
// Options.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// errorValueLimit is how much of a non-JSON error body an APIError keeps.
const errorValueLimit = 200

// Options configure a Client. The zero value is a client without
// credentials, with the system's root CAs and DefaultTimeout.
type Options struct {
	// Token is sent as "Authorization: Bearer <token>" on every request.
	Token string
	// TLS configures the transport for https:// base URLs, e.g. from
	// TLSConfig. It must be nil when HTTPClient is set.
	TLS *tls.Config
	// HTTPClient replaces the client's own HTTP client (tests, custom
	// transports). It is used as given, except that a non-zero Timeout
	// replaces its timeout.
	HTTPClient *http.Client
	// Timeout bounds each request; zero means DefaultTimeout (or, with
	// HTTPClient, that client's own timeout), negative means no limit
	// beyond the caller's context.
	Timeout time.Duration
	// Fallbacks are further base URLs of the same coordinator cluster,
	// checked as the base URL is. A request that gets no answer from a
	// node, or a 503 (no leader, halted), goes to the next one in turn,
	// and the node that answered serves the next request first. Only a
	// GET is sent again after an error past connecting (the node may
	// have received it); a write, only when the connection failed or the
	// node answered 503. A write whose outcome a node reported unknown
	// (503) may thus apply twice: the second answer says so (conflict,
	// not_found).
	Fallbacks []string
}

// MaxRetryAfter bounds the Retry-After the client honours: a longer one
// (or a far HTTP date) is cut to it.
const MaxRetryAfter = 10 * time.Minute

// Client talks to one coordinator. It is safe for concurrent use.
//
// A 429 or 503 answer with Retry-After is honoured: until it passes, calls
// of the same route fail at once with an *APIError of the same kind and
// the remaining RetryAfter, without sending anything.
type Client struct {
	base string // scheme://host[/prefix], no trailing slash
	// bases are base and the fallbacks, in order; cur indexes the node
	// that answered last (under mu).
	bases []string
	cur   int
	token string
	hc    *http.Client
	// now is the clock for Retry-After; time.Now in production.
	now func() time.Time

	mu sync.Mutex
	// notBefore maps a route to when it may be called again and the error
	// that said so.
	notBefore map[string]retryGate
}

// retryGate is a route's Retry-After: no call before until.
type retryGate struct {
	until time.Time
	err   APIError
}

// APIError is a non-2xx response of the coordinator.
type APIError struct {
	// Status is the HTTP status code.
	Status int
	// Kind is the wire.Error kind, e.g. wire.KindSemaphoreFull; "internal"
	// when the body was not a wire.Error.
	Kind string
	// Value is the human-readable detail.
	Value string
	// RetryAfter is the response's Retry-After (429, 503), at most
	// MaxRetryAfter; zero when it had none. Do not call the route again
	// before it passed.
	RetryAfter time.Duration
}

// Error formats the error as "KIND: VALUE (HTTP STATUS)".
func (e *APIError) Error() string {
	return fmt.Sprintf("%s: %s (HTTP %d)", e.Kind, e.Value, e.Status)
}

// RetryAfter returns the Retry-After of the *APIError in err's chain, or
// zero.
func RetryAfter(err error) time.Duration {
	if ae, ok := errors.AsType[*APIError](err); ok {
		return ae.RetryAfter
	}
	return 0
}

// ErrorKind returns the kind of the *APIError in err's chain, or "" when
// err carries none (e.g. a network error).
func ErrorKind(err error) string {
	if ae, ok := errors.AsType[*APIError](err); ok {
		return ae.Kind
	}
	return ""
}

// New returns a client of the coordinator at baseURL, e.g.
// "https://coord1.example:8001". baseURL may carry a path prefix but no
// query, fragment or user info.
func New(baseURL string, opts Options) (*Client, error) {
	var bases []string
	for _, raw := range append([]string{baseURL}, opts.Fallbacks...) {
		b, err := parseBase(raw, opts)
		if err != nil {
			return nil, err
		}
		bases = append(bases, b)
	}
	timeout := max(opts.Timeout, 0) // negative: no limit
	var hc *http.Client
	if opts.HTTPClient != nil {
		if opts.TLS != nil {
			return nil, errors.New("client options: set TLS on the HTTPClient's transport, not in Options.TLS")
		}
		c := *opts.HTTPClient
		if opts.Timeout != 0 {
			c.Timeout = timeout
		}
		hc = &c
	} else {
		if opts.Timeout == 0 {
			timeout = DefaultTimeout
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if opts.TLS != nil {
			tr.TLSClientConfig = opts.TLS.Clone()
		}
		withToken := opts.Token != ""
		hc = &http.Client{
			Transport: tr,
			Timeout:   timeout,
			CheckRedirect: func(req *http.Request, via []*http.Request) error {
				if len(via) >= 10 {
					return errors.New("stopped after 10 redirects")
				}
				if err := checkTransport(req.URL, withToken); err != nil {
					return fmt.Errorf("refusing redirect to %s: %w", req.URL.Redacted(), err)
				}
				return nil
			},
		}
	}
	return &Client{base: bases[0], bases: bases, token: opts.Token, hc: hc, now: time.Now, notBefore: map[string]retryGate{}}, nil
}

// parseBase checks one coordinator URL and returns it as a base:
// scheme://host[/prefix], no trailing slash.
func parseBase(raw string, opts Options) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("coordinator URL %q: %w", raw, err)
	}
	if err := checkURL(u, opts.Token != ""); err != nil {
		return "", fmt.Errorf("coordinator URL %q: %w", raw, err)
	}
	if opts.TLS != nil && u.Scheme != "https" {
		return "", fmt.Errorf("coordinator URL %q: TLS is configured but the URL is not https://", raw)
	}
	return u.Scheme + "://" + u.Host + strings.TrimRight(u.EscapedPath(), "/"), nil
}

// checkURL rejects base URLs the client cannot use: see checkTransport,
// plus embedded credentials, queries and fragments.
func checkURL(u *url.URL, withToken bool) error {
	switch {
	case u.User != nil:
		return errors.New("credentials in the URL are not supported; use a token")
	case u.RawQuery != "" || u.Fragment != "":
		return errors.New("query and fragment are not supported")
	}
	return checkTransport(u, withToken)
}

// checkTransport rejects URLs the client must not send requests to:
// non-HTTP schemes, no host, and clear-text http off loopback when a token
// would be sent.
func checkTransport(u *url.URL, withToken bool) error {
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("scheme %q: want http:// or https://", u.Scheme)
	case u.Host == "" || u.Hostname() == "":
		return errors.New("no host")
	case withToken && u.Scheme == "http" && !isLoopback(u.Hostname()):
		return fmt.Errorf("refusing to send a token in clear text to non-loopback host %q: use https://", u.Hostname())
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// TLSConfig builds the client side of mutual TLS: caFile (PEM) replaces
// the system roots when set; certFile and keyFile (PEM) are the client
// certificate and must be given together. It returns nil, nil when all
// three are empty.
func TLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" && certFile == "" && keyFile == "" {
		return nil, nil
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("TLS client certificate and key must be given together")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("TLS CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS CA %s: no PEM certificates found", caFile)
		}
		cfg.RootCAs = pool
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("TLS client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// BaseURL returns the coordinator URL the client talks to (the first one
// given to New).
func (c *Client) BaseURL() string { return c.base }

// BaseURLs returns every coordinator URL of the client: the base URL and
// the fallbacks, in order.
func (c *Client) BaseURLs() []string { return slices.Clone(c.bases) }

// do sends one request, to the nodes in turn (see Options.Fallbacks).
// path must already be escaped; in, when not nil, is sent as JSON; out,
// when not nil, receives the decoded 2xx body.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, header http.Header, in, out any) error {
	return c.onNodes(ctx, method, func(base string) error {
		return c.doOn(ctx, base, method, path, query, header, in, out)
	})
}

// onNodes runs call on the nodes in turn, from the one that answered
// last, until one answers (see nextNode).
func (c *Client) onNodes(ctx context.Context, method string, call func(base string) error) error {
	if len(c.bases) == 1 {
		return call(c.base)
	}
	c.mu.Lock()
	start := c.cur
	c.mu.Unlock()
	var errs []error
	for i := range c.bases {
		idx := (start + i) % len(c.bases)
		base := c.bases[idx]
		err := call(base)
		if err == nil || ctx.Err() != nil || !nextNode(method, err) {
			if err == nil || ErrorKind(err) != "" {
				c.mu.Lock()
				c.cur = idx
				c.mu.Unlock()
			}
			return err
		}
		if _, ok := errors.AsType[*APIError](err); ok {
			err = fmt.Errorf("%s: %w", base, err)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// nextNode reports whether a request that failed with err may go to the
// next node: a 503, a connection that could not be made, and for a GET
// any error without an answer.
func nextNode(method string, err error) bool {
	if ae, ok := errors.AsType[*APIError](err); ok {
		return ae.Status == http.StatusServiceUnavailable
	}
	if method == http.MethodGet {
		return true
	}
	if oe, ok := errors.AsType[*net.OpError](err); ok && oe.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// doOn sends one request to the node at base.
func (c *Client) doOn(ctx context.Context, base, method, path string, query url.Values, header http.Header, in, out any) error {
	route := method + " " + path
	if len(c.bases) > 1 {
		route = base + " " + route
	}
	if err := c.gate(base, route); err != nil {
		return err
	}
	target := base + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var body io.Reader
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s %s request: %w", method, path, err)
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "kroll/"+buildinfo.Version())
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		// url.Error repeats the full URL; keep its cause under our own
		// prefix.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return fmt.Errorf("%s %s: %w", method, target, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseSize+1))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, target, err)
	}
	if len(data) > MaxResponseSize {
		return fmt.Errorf("%s %s: response larger than %d bytes", method, target, MaxResponseSize)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		ae := decodeError(resp.StatusCode, data)
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			ae.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), c.now())
			if ae.RetryAfter > 0 {
				c.mu.Lock()
				c.notBefore[route] = retryGate{until: c.now().Add(ae.RetryAfter), err: *ae}
				c.mu.Unlock()
			}
		}
		return ae
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, target, err)
	}
	return nil
}

// gate refuses a call of route while a Retry-After for it runs.
func (c *Client) gate(base, route string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, ok := c.notBefore[route]
	if !ok {
		return nil
	}
	left := g.until.Sub(c.now())
	if left <= 0 {
		delete(c.notBefore, route)
		return nil
	}
	ae := g.err
	ae.RetryAfter = left
	ae.Value = fmt.Sprintf("not sent: %s asked to wait (Retry-After), %s left; it answered: %s", base, left.Round(time.Millisecond), g.err.Value)
	return &ae
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP
// date; zero when absent or invalid, at most MaxRetryAfter.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseUint(v, 10, 32); err == nil {
		d = time.Duration(secs) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), MaxRetryAfter)
}

// decodeError turns a non-2xx body into an *APIError.
func decodeError(status int, body []byte) *APIError {
	var we wire.Error
	if err := json.Unmarshal(body, &we); err == nil && we.Kind != "" {
		return &APIError{Status: status, Kind: we.Kind, Value: we.Value}
	}
	value := strings.TrimSpace(string(body[:min(len(body), errorValueLimit)]))
	value = strings.ToValidUTF8(value, string(utf8.RuneError))
	if value == "" {
		value = http.StatusText(status)
	}
	return &APIError{Status: status, Kind: wire.KindInternal, Value: value}
}

// Status returns the cluster overview.
func (c *Client) Status(ctx context.Context) (*wire.Status, error) {
	var st wire.Status
	if err := c.do(ctx, http.MethodGet, wire.PathStatus, nil, nil, nil, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// Members lists the coordinator cluster's members.
func (c *Client) Members(ctx context.Context) ([]wire.Member, error) {
	var ms []wire.Member
	err := c.do(ctx, http.MethodGet, wire.PathMembers, nil, nil, nil, &ms)
	return ms, err
}

// Join adds a voter to the cluster and returns the new membership.
func (c *Client) Join(ctx context.Context, req wire.JoinRequest) ([]wire.Member, error) {
	var ms []wire.Member
	err := c.do(ctx, http.MethodPost, wire.PathJoin, nil, nil, req, &ms)
	return ms, err
}

// Remove removes member id from the cluster and returns the new
// membership.
func (c *Client) Remove(ctx context.Context, id string) ([]wire.Member, error) {
	var ms []wire.Member
	err := c.do(ctx, http.MethodPost, wire.PathRemove, nil, nil, wire.RemoveRequest{ID: id}, &ms)
	return ms, err
}

// Datacenters lists all datacenters with their settings and live counts.
func (c *Client) Datacenters(ctx context.Context) ([]wire.Datacenter, error) {
	var dcs []wire.Datacenter
	err := c.do(ctx, http.MethodGet, wire.PathDatacenters, nil, nil, nil, &dcs)
	return dcs, err
}

func datacenterPath(name string) string { return wire.PathDatacenter + url.PathEscape(name) }

// Datacenter returns one datacenter.
func (c *Client) Datacenter(ctx context.Context, name string) (*wire.Datacenter, error) {
	return c.datacenterCall(ctx, http.MethodGet, datacenterPath(name), nil)
}

// SetDatacenter changes the settings of datacenter name, creating it when
// new; nil fields of upd keep their value.
func (c *Client) SetDatacenter(ctx context.Context, name string, upd wire.DatacenterUpdate) (*wire.Datacenter, error) {
	return c.datacenterCall(ctx, http.MethodPut, datacenterPath(name), upd)
}

// Pause stops new slot grants in datacenter name.
func (c *Client) Pause(ctx context.Context, name, reason string) (*wire.Datacenter, error) {
	return c.datacenterCall(ctx, http.MethodPost, datacenterPath(name)+wire.PathDatacenterPause, wire.PauseRequest{Reason: reason})
}

// Resume lifts a pause of datacenter name.
func (c *Client) Resume(ctx context.Context, name string) (*wire.Datacenter, error) {
	return c.datacenterCall(ctx, http.MethodPost, datacenterPath(name)+wire.PathDatacenterResume, nil)
}

func (c *Client) datacenterCall(ctx context.Context, method, path string, in any) (*wire.Datacenter, error) {
	var dc wire.Datacenter
	if err := c.do(ctx, method, path, nil, nil, in, &dc); err != nil {
		return nil, err
	}
	return &dc, nil
}

// dcQuery is the ?dc= filter; empty dc means all datacenters.
func dcQuery(dc string) url.Values {
	if dc == "" {
		return nil
	}
	return url.Values{"dc": {dc}}
}

// Slots lists held slots, of datacenter dc or of all when dc is empty.
func (c *Client) Slots(ctx context.Context, dc string) ([]wire.Slot, error) {
	var slots []wire.Slot
	err := c.do(ctx, http.MethodGet, wire.PathSlots, dcQuery(dc), nil, nil, &slots)
	return slots, err
}

// ReleaseSlot is the operator's break-glass release of a host's slot; it
// returns the released slot.
func (c *Client) ReleaseSlot(ctx context.Context, req wire.SlotReleaseRequest) (*wire.Slot, error) {
	var s wire.Slot
	if err := c.do(ctx, http.MethodPost, wire.PathSlotsRelease, nil, nil, req, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Hosts lists registered hosts, of datacenter dc or of all when dc is
// empty.
func (c *Client) Hosts(ctx context.Context, dc string) ([]wire.Host, error) {
	var hosts []wire.Host
	err := c.do(ctx, http.MethodGet, wire.PathHosts, dcQuery(dc), nil, nil, &hosts)
	return hosts, err
}

// Host returns one registered host.
func (c *Client) Host(ctx context.Context, id string) (*wire.Host, error) {
	var h wire.Host
	if err := c.do(ctx, http.MethodGet, wire.PathHost+url.PathEscape(id), nil, nil, nil, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// RemoveHost forgets a decommissioned host; a slot holder only with
// req.Force and a reason. It returns the host as it was.
func (c *Client) RemoveHost(ctx context.Context, id string, req wire.HostRemoveRequest) (*wire.Host, error) {
	var h wire.Host
	if err := c.do(ctx, http.MethodPost, wire.PathHost+url.PathEscape(id)+wire.PathHostRemove, nil, nil, req, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// SetHostLine assigns host id a kernel line (req.Line; "" clears the
// operator's assignment). It returns the host as it is then: its line, or
// the line pending and why.
func (c *Client) SetHostLine(ctx context.Context, id string, req wire.HostLineRequest) (*wire.Host, error) {
	var h wire.Host
	if err := c.do(ctx, http.MethodPost, wire.PathHost+url.PathEscape(id)+wire.PathHostLine, nil, nil, req, &h); err != nil {
		return nil, err
	}
	return &h, nil
}

// Events returns events with an ID greater than since (0: from the
// oldest kept), at most limit of them (0: the coordinator's default).
func (c *Client) Events(ctx context.Context, since uint64, limit int) ([]wire.Event, error) {
	q := url.Values{}
	if since > 0 {
		q.Set("since", strconv.FormatUint(since, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var evs []wire.Event
	err := c.do(ctx, http.MethodGet, wire.PathEvents, q, nil, nil, &evs)
	return evs, err
}

// Heartbeat registers the host and refreshes its status; it returns the
// state the coordinator wants the host in.
func (c *Client) Heartbeat(ctx context.Context, hb wire.Heartbeat) (*wire.DesiredState, error) {
	var ds wire.DesiredState
	header := http.Header{wire.HostIDHeader: {hb.HostID}, wire.HeartbeatDigestHeader: {wire.HeartbeatDigest(hb)}}
	if err := c.do(ctx, http.MethodPost, wire.PathHeartbeat, nil, header, hb, &ds); err != nil {
		return nil, err
	}
	return &ds, nil
}

// AcquireSlot asks for a reboot slot (req.Token 0). A denial is an
// *APIError with one of the wire.Kind*-"failed_lock_" kinds.
func (c *Client) AcquireSlot(ctx context.Context, req wire.SlotRequest) (*wire.Slot, error) {
	return c.slotCall(ctx, wire.PathSlotAcquire, req)
}

// RenewSlot extends the lease of the slot with fencing token req.Token.
func (c *Client) RenewSlot(ctx context.Context, req wire.SlotRequest) (*wire.Slot, error) {
	return c.slotCall(ctx, wire.PathSlotRenew, req)
}

func (c *Client) slotCall(ctx context.Context, path string, req wire.SlotRequest) (*wire.Slot, error) {
	var s wire.Slot
	if err := c.do(ctx, http.MethodPost, path, nil, nil, req, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// AgentRelease gives back the slot with fencing token req.Token. The
// response body, if any, is ignored.
func (c *Client) AgentRelease(ctx context.Context, req wire.SlotRequest) error {
	return c.do(ctx, http.MethodPost, wire.PathSlotRelease, nil, nil, req, nil)
}

// ReportHealth sends the agent's verdict after booting the new kernel. The
// response body, if any, is ignored.
func (c *Client) ReportHealth(ctx context.Context, rep wire.HealthReport) error {
	return c.do(ctx, http.MethodPost, wire.PathHealth, nil, nil, rep, nil)
}

// fleetLockHeader marks FleetLock requests.
func fleetLockHeader() http.Header {
	return http.Header{http.CanonicalHeaderKey(wire.FleetLockHeader): {"true"}}
}

// PreReboot takes (or re-takes: locks are recursive) node id's reboot
// lock in group, the FleetLock way.
func (c *Client) PreReboot(ctx context.Context, id, group string) error {
	return c.fleetLock(ctx, wire.PathFleetLockPreReboot, id, group)
}

// SteadyState releases node id's reboot lock in group, the FleetLock way.
func (c *Client) SteadyState(ctx context.Context, id, group string) error {
	return c.fleetLock(ctx, wire.PathFleetLockSteady, id, group)
}

func (c *Client) fleetLock(ctx context.Context, path, id, group string) error {
	req := wire.FleetLockRequest{ClientParams: wire.FleetLockClientParams{ID: id, Group: group}}
	return c.do(ctx, http.MethodPost, path, nil, fleetLockHeader(), req, nil)
}

// Releases lists the releases the coordinator knows.
func (c *Client) Releases(ctx context.Context) ([]wire.Release, error) {
	var out []wire.Release
	err := c.do(ctx, http.MethodGet, wire.PathReleases, nil, nil, nil, &out)
	return out, err
}

// FeedBuilds lists the builds the feeds refused, newest first (every
// feed's when feed is empty).
func (c *Client) FeedBuilds(ctx context.Context, feed string) ([]wire.FeedBuild, error) {
	var q url.Values
	if feed != "" {
		q = url.Values{"feed": {feed}}
	}
	var out []wire.FeedBuild
	err := c.do(ctx, http.MethodGet, wire.PathFeedBuilds, q, nil, nil, &out)
	return out, err
}

// AddRelease adds a signed release manifest.
func (c *Client) AddRelease(ctx context.Context, req wire.ReleaseAddRequest) (*wire.Release, error) {
	var out wire.Release
	if err := c.do(ctx, http.MethodPost, wire.PathReleases, nil, nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Policies lists the pushed mitigation policies with their coverage.
func (c *Client) Policies(ctx context.Context) ([]wire.Policy, error) {
	var out []wire.Policy
	err := c.do(ctx, http.MethodGet, wire.PathPolicies, nil, nil, nil, &out)
	return out, err
}

// PushPolicy pushes a signed mitigation policy.
func (c *Client) PushPolicy(ctx context.Context, req wire.PolicyPushRequest) (*wire.Policy, error) {
	var out wire.Policy
	if err := c.do(ctx, http.MethodPost, wire.PathPolicies, nil, nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RetirePolicy retires a policy fleet-wide.
func (c *Client) RetirePolicy(ctx context.Context, req wire.PolicyRetireRequest) (*wire.Policy, error) {
	var out wire.Policy
	if err := c.do(ctx, http.MethodPost, wire.PathPolicyRetire, nil, nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Rollouts lists the rollouts, newest first.
func (c *Client) Rollouts(ctx context.Context) ([]wire.Rollout, error) {
	var out []wire.Rollout
	err := c.do(ctx, http.MethodGet, wire.PathRollouts, nil, nil, nil, &out)
	return out, err
}

// Rollout returns one rollout with its progress.
func (c *Client) Rollout(ctx context.Context, id string) (*wire.Rollout, error) {
	var out wire.Rollout
	if err := c.do(ctx, http.MethodGet, wire.PathRollout+url.PathEscape(id), nil, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// StartRollout starts a rollout.
func (c *Client) StartRollout(ctx context.Context, req wire.RolloutStartRequest) (*wire.Rollout, error) {
	var out wire.Rollout
	if err := c.do(ctx, http.MethodPost, wire.PathRollouts, nil, nil, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RolloutAction pauses, resumes or aborts a rollout (action "pause",
// "resume" or "abort").
func (c *Client) RolloutAction(ctx context.Context, id, action, reason string) (*wire.Rollout, error) {
	var out wire.Rollout
	if err := c.do(ctx, http.MethodPost, wire.PathRollout+url.PathEscape(id)+"/"+action, nil, nil, wire.RolloutActionRequest{Reason: reason}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
