package gateway

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/sync/semaphore"

	"cpm/internal/access"
	"cpm/internal/command"
	"cpm/internal/relay"
	"cpm/internal/store"
)

// WriteGate holds a planned handover (repo move, node drain) still for a
// moment: every write session on a repository holds its gate shared for
// its whole run, and the handover takes it exclusively, so that pushes
// under way finish here, new ones wait, and none is accepted while the
// primary changes. It is in-process: it covers the sessions of this
// cpm-shell serve (a cluster node's gateway). Both waits end with their
// context, and a wait that ends withdraws: a handover that gave up never
// holds new pushes back (sync.RWMutex could not withdraw a Lock).
type WriteGate struct {
	mu    sync.Mutex
	repos map[string]*gated
}

// gateWeight is the gate's whole weight: a write session takes 1, a
// handover all of it.
const gateWeight = 1 << 30

// gated is one repository's gate and how many hold or wait for it.
type gated struct {
	sem   *semaphore.Weighted
	users int
}

// NewWriteGate returns a gate with every repository open.
func NewWriteGate() *WriteGate { return &WriteGate{repos: map[string]*gated{}} }

// entry returns repo's gate, counted as used until done is called.
func (g *WriteGate) entry(repo string) (*gated, func()) {
	key := strings.ToLower(repo) // names are case-insensitive
	g.mu.Lock()
	e := g.repos[key]
	if e == nil {
		e = &gated{sem: semaphore.NewWeighted(gateWeight)}
		g.repos[key] = e
	}
	e.users++
	g.mu.Unlock()
	return e, func() {
		g.mu.Lock()
		if e.users--; e.users == 0 {
			delete(g.repos, key)
		}
		g.mu.Unlock()
	}
}

// take waits for weight n of repo's gate until ctx ends; the func
// gives it back.
func (g *WriteGate) take(ctx context.Context, repo string, n int64) (func(), error) {
	e, done := g.entry(repo)
	if err := e.sem.Acquire(ctx, n); err != nil {
		done()
		return nil, fmt.Errorf("hold writes to %s: %w", repo, err)
	}
	return func() { e.sem.Release(n); done() }, nil
}

// Shared holds repo's gate for one write session, waiting while a
// handover holds it, until ctx ends; the func releases it.
func (g *WriteGate) Shared(ctx context.Context, repo string) (func(), error) {
	return g.take(ctx, repo, 1)
}

// Exclusive waits until no write session on repo runs and holds new ones
// back until the returned func is called; ctx ends the wait.
func (g *WriteGate) Exclusive(ctx context.Context, repo string) (func(), error) {
	return g.take(ctx, repo, gateWeight)
}

// maxHops is how often a session may be relayed: once to the primary as
// this node saw it, and once more when that node handed the repository
// over while the session waited for its gate.
const maxHops = relay.MaxHops

// holdWrite holds the write gate of a write session's repository on a
// cluster node for the session's run (release), after which the session
// runs here under the placement read with the gate held, unless the
// repository was handed over to another node while it waited: then it
// is relayed there (elsewhere, with that node's status), once at most.
// Other sessions keep p.
func (g *Gateway) holdWrite(ctx context.Context, s Session, cmd command.Command, grant access.Grant, p store.Placement) (store.Placement, func(), bool, int, error) {
	noop := func() {}
	if g.Gate == nil || !p.Clustered() || !writes(cmd) {
		return p, noop, false, 0, nil
	}
	release, err := g.Gate.Shared(ctx, grant.Repo.String())
	if err != nil {
		return p, noop, true, 1, &failure{line: "cpm: " + grant.Repo.String() + " is being handed over; try again", err: err}
	}
	p, err = g.placement(ctx, grant)
	if err != nil {
		release()
		return p, noop, true, 1, err
	}
	if !p.Clustered() || p.PrimaryIs(g.Self) {
		return p, release, false, 0, nil
	}
	release()
	if !relaysOn(cmd, s) {
		return p, noop, true, 1, retry(store.ErrNotPrimary, "%s: %v", grant.Repo, store.ErrNotPrimary)
	}
	primary, err := g.Store.ServerByName(ctx, p.Primary.Name)
	if err != nil {
		return p, noop, true, 1, &failure{line: "cpm: internal error; try again later", err: fmt.Errorf("primary of %s: %w", grant.Repo, err)}
	}
	status, err := g.relayOut(ctx, s, cmd, primary)
	return p, noop, true, status, err
}

// relaysOn reports whether a session this node cannot serve (it is no
// longer the repository's primary) goes on to the primary rather than
// being refused: a write that has not used up its hops.
func relaysOn(cmd command.Command, s Session) bool {
	return writes(cmd) && s.Hops < maxHops
}
