package gateway

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"cpm/internal/access"
	"cpm/internal/command"
	"cpm/internal/names"
	"cpm/internal/relay"
	"cpm/internal/store"
	"cpm/internal/transfer"
)

// WriteGate holds a planned handover (repo move, node drain) still for a
// moment: every write session on a repository holds its gate shared for
// its whole run, and the handover takes it exclusively, so that pushes
// under way finish here, new ones wait, and none is accepted while the
// primary changes. The gate is a pair of lock files under DATA/locks
// (flock, transfer.LockFileContext), so it holds across processes: the
// sessions of cpm-shell serve and those of OpenSSH's forced commands, each
// a process of its own, and the handover in whichever process performs
// them. Both waits end with their context, and a wait that ends
// withdraws: a handover that gave up never holds new pushes back.
//
// flock alone would let a stream of overlapping pushes keep a handover
// out for ever, so a turnstile comes first: a write session passes it
// shared (only for the moment it takes the gate), a handover holds it
// exclusively from before it waits for the gate until it is done, so
// that new sessions queue behind it while those under way finish.
type WriteGate struct {
	dir string // DATA/locks
}

// NewWriteGate returns the gate of the data directory whose lock folder
// is lockDir; every repository starts open.
func NewWriteGate(lockDir string) *WriteGate { return &WriteGate{dir: lockDir} }

// files are repo's turnstile and gate, named in lower case: names are
// case-insensitive, and a session and a handover may spell one
// repository differently.
func (g *WriteGate) files(repo string) (turnstile, gate string, err error) {
	rp, err := names.ParseRepoPath(repo)
	if err != nil {
		return "", "", err
	}
	base := filepath.Join(g.dir, strings.ToLower(rp.Org), strings.ToLower(rp.Repo))
	return base + ".turnstile", base + ".gate", nil
}

// Shared holds repo's gate for one write session, waiting while a
// handover holds it, until ctx ends; the func releases it.
func (g *WriteGate) Shared(ctx context.Context, repo string) (func(), error) {
	turnstile, gate, err := g.files(repo)
	if err != nil {
		return nil, err
	}
	pass, err := transfer.LockFileContext(ctx, turnstile, true)
	if err != nil {
		return nil, fmt.Errorf("hold writes to %s: %w", repo, err)
	}
	defer pass()
	release, err := transfer.LockFileContext(ctx, gate, true)
	if err != nil {
		return nil, fmt.Errorf("hold writes to %s: %w", repo, err)
	}
	return release, nil
}

// Exclusive waits until no write session on repo runs and holds new ones
// back until the returned func is called; ctx ends the wait.
func (g *WriteGate) Exclusive(ctx context.Context, repo string) (func(), error) {
	turnstile, gate, err := g.files(repo)
	if err != nil {
		return nil, err
	}
	closeTurnstile, err := transfer.LockFileContext(ctx, turnstile, false)
	if err != nil {
		return nil, fmt.Errorf("hold writes to %s: %w", repo, err)
	}
	release, err := transfer.LockFileContext(ctx, gate, false)
	if err != nil {
		closeTurnstile()
		return nil, fmt.Errorf("hold writes to %s: %w", repo, err)
	}
	return func() { release(); closeTurnstile() }, nil
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
		return p, noop, true, 1, gateFailure(grant.Repo.String(), err)
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

// gateFailure is what a write session that could not hold repo's gate
// tells its client: only a wait that ended (a handover held it past the
// session's time, or the client left) means a handover; anything else
// (a lock folder this process cannot write) is the server's fault,
// logged with its cause.
func gateFailure(repo string, err error) *failure {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &failure{line: "cpm: " + repo + " is being handed over; try again", err: err}
	}
	return &failure{line: "cpm: internal error; try again later", err: err}
}

// relaysOn reports whether a session this node cannot serve (it is no
// longer the repository's primary) goes on to the primary rather than
// being refused: a write that has not used up its hops.
func relaysOn(cmd command.Command, s Session) bool {
	return writes(cmd) && s.Hops < maxHops
}
