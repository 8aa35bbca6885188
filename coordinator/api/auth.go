package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Role is what a credential may do.
type Role string

// Roles. Operator roles nest: admin ⊃ operate ⊃ read. Agents may use the
// agent and FleetLock APIs; peers (other coordinator nodes) may forward
// commands.
const (
	RoleNone    Role = ""
	RoleRead    Role = "read"
	RoleOperate Role = "operate"
	RoleAdmin   Role = "admin"
	RoleAgent   Role = "agent"
	RolePeer    Role = "peer"
)

// ParseRole parses a role name.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleRead, RoleOperate, RoleAdmin, RoleAgent, RolePeer:
		return r, nil
	}
	return RoleNone, fmt.Errorf("unknown role %q (want read, operate, admin, agent or peer)", s)
}

// Allows reports whether a credential with role r may use a route that
// needs role need.
func (r Role) Allows(need Role) bool {
	rank := map[Role]int{RoleRead: 1, RoleOperate: 2, RoleAdmin: 3}
	switch need {
	case RoleRead, RoleOperate, RoleAdmin:
		if r == RolePeer {
			return need == RoleRead
		}
		return rank[r] >= rank[need]
	case RoleAgent:
		// Operators may act for hosts (break-glass, tests); peers may not.
		return r == RoleAgent || r == RoleAdmin
	case RolePeer:
		return r == RolePeer
	}
	return false
}

// Identity is an authenticated caller.
type Identity struct {
	Name string
	Role Role
	// Via is "token", "certificate", "loopback" or, for FleetLock
	// requests without credentials from an allowed source network,
	// "network".
	Via string
}

func (id Identity) String() string { return fmt.Sprintf("%s (%s via %s)", id.Name, id.Role, id.Via) }

// Token is a bearer token's entry in the coordinator's configuration; only
// its SHA-256 is stored.
type Token struct {
	Name   string
	Role   Role
	SHA256 [32]byte
}

// HashToken returns the hex SHA-256 of a token, as configured.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Auth authenticates requests: a bearer token from the configured set,
// else a verified TLS client certificate whose URI SAN is
// "kroll:ROLE:NAME" (e.g. kroll:agent:host-17, kroll:peer:c2).
type Auth struct {
	Tokens []Token
	// AgentCertificates, set when the coordinator serves TLS, makes agents
	// authenticate with client certificates: agent-role tokens are refused.
	AgentCertificates bool
	// PeerCertificates, set when the coordinator serves TLS, makes peers
	// (other coordinator nodes) authenticate with certificates
	// kroll:peer:<node-id>: peer-role tokens are refused.
	PeerCertificates bool
	// PeerCAs, when set (a peer CA separate from the client CA), is the
	// only CA a certificate naming role peer may chain to; certificates
	// naming any other role must then chain to ClientCAs.
	PeerCAs, ClientCAs *x509.CertPool
}

// NewToken builds a Token entry from a configured hex hash.
func NewToken(name string, role Role, sha256Hex string) (Token, error) {
	b, err := hex.DecodeString(sha256Hex)
	if err != nil || len(b) != 32 {
		return Token{}, fmt.Errorf("token %q: sha256 must be 64 hex characters", name)
	}
	t := Token{Name: name, Role: role}
	copy(t.SHA256[:], b)
	return t, nil
}

// Authenticate returns the caller's identity; requests without credentials
// get RoleNone (they may only reach unauthenticated routes).
func (a *Auth) Authenticate(r *http.Request) (Identity, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || tok == "" {
			return Identity{}, errors.New("Authorization header must be 'Bearer TOKEN'")
		}
		sum := sha256.Sum256([]byte(tok))
		for _, t := range a.Tokens {
			if subtle.ConstantTimeCompare(sum[:], t.SHA256[:]) == 1 {
				if t.Role == RoleAgent && a.AgentCertificates {
					return Identity{}, fmt.Errorf("token %q: with TLS, agents authenticate with client certificates (URI SAN kroll:agent:HOST)", t.Name)
				}
				if t.Role == RolePeer && a.PeerCertificates {
					return Identity{}, fmt.Errorf("token %q: with TLS, peers authenticate with certificates (URI SAN kroll:peer:NODE-ID)", t.Name)
				}
				return Identity{Name: t.Name, Role: t.Role, Via: "token"}, nil
			}
		}
		return Identity{}, errors.New("unknown token")
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		cert := r.TLS.VerifiedChains[0][0]
		for _, u := range cert.URIs {
			if u.Scheme != "kroll" {
				continue
			}
			roleName, name, ok := strings.Cut(u.Opaque, ":")
			role, err := ParseRole(roleName)
			if !ok || err != nil || name == "" {
				return Identity{}, fmt.Errorf("client certificate URI %q: want kroll:ROLE:NAME", u)
			}
			if err := a.checkIssuer(r.TLS.PeerCertificates, role); err != nil {
				return Identity{}, err
			}
			return Identity{Name: name, Role: role, Via: "certificate"}, nil
		}
		return Identity{}, errors.New("client certificate has no kroll:ROLE:NAME URI")
	}
	return Identity{Name: "anonymous", Role: RoleNone, Via: "none"}, nil
}

// checkIssuer enforces the separate peer CA: a certificate naming role
// peer must chain to PeerCAs, any other to ClientCAs.
func (a *Auth) checkIssuer(chain []*x509.Certificate, role Role) error {
	if a.PeerCAs == nil {
		return nil
	}
	pool, which := a.ClientCAs, "client"
	if role == RolePeer {
		pool, which = a.PeerCAs, "peer"
	}
	if pool == nil || len(chain) == 0 {
		return fmt.Errorf("client certificate for role %s: no %s CA configured", role, which)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := chain[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return fmt.Errorf("client certificate for role %s does not chain to the %s CA: %w", role, which, err)
	}
	return nil
}
