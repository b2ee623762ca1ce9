package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"cpm/internal/datadir"
	"cpm/internal/peer"
	"cpm/internal/remote"
	"cpm/internal/shellquote"
	"cpm/internal/store"
	"cpm/internal/targetstate"
	"cpm/internal/transfer"
	"cpm/internal/wake"
)

// ServerStatus is a server with its derived state, as server list shows it.
type ServerStatus struct {
	store.Server
	State      string  `json:"state"`
	Cause      string  `json:"cause,omitempty"`
	Fix        string  `json:"fix,omitempty"`
	Pending    int     `json:"pending"`
	LagSeconds float64 `json:"lag_seconds"`
	status     targetstate.Status
}

// Line is the state in one line: "ok", "blocked: CAUSE".
func (s ServerStatus) Line() string { return s.status.String() }

// ServerStatuses lists every server with its state.
func (s *Service) ServerStatuses(ctx context.Context) ([]ServerStatus, error) {
	servers, err := s.Store.Servers(ctx)
	if err != nil {
		return nil, err
	}
	jobs, err := s.Store.Jobs(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ServerStatus, 0, len(servers))
	now := time.Now()
	for _, srv := range servers {
		if srv.Role == store.Node {
			continue // the cluster's own nodes: node list
		}
		st := targetstate.Of(srv, jobs, now)
		out = append(out, ServerStatus{Server: srv, State: st.State.String(), Cause: st.Cause, Fix: st.Fix,
			Pending: st.Pending, LagSeconds: st.Lag.Seconds(), status: st})
	}
	return out, nil
}

// Check is what `server check` reports.
type Check struct {
	Server string     `json:"server"`
	Role   store.Role `json:"role"`
	// A backup: its tools, free space, and whether its path is writable.
	Rsync    string `json:"rsync,omitempty"`
	Git      string `json:"git,omitempty"`
	FreeKiB  int64  `json:"free_kib,omitempty"`
	Writable bool   `json:"writable,omitempty"`
	// A neighbour: who answers, and how fast.
	Node    string  `json:"node,omitempty"`
	Version string  `json:"version,omitempty"`
	PingMS  float64 `json:"ping_ms,omitempty"`
	// Either: its state (targetstate), and how far behind its replicas are.
	State string `json:"state"`
	Cause string `json:"cause,omitempty"`
	Fix   string `json:"fix,omitempty"`
	// Unblocked is the reason the server was blocked for, when this check
	// passed and lifted the block.
	Unblocked  string    `json:"unblocked,omitempty"`
	Pending    int       `json:"pending"`
	LagSeconds float64   `json:"lag_seconds"`
	LastSync   time.Time `json:"last_sync,omitzero"`
}

// CheckServer connects with the pinned key and reports on the server: a
// backup's tools, free space and writable path; a neighbour's node name,
// version and round trip; for both, the replication lag.
func (s *Service) CheckServer(ctx context.Context, dir datadir.Dir, name string) (Check, error) {
	srv, err := s.Store.ServerByName(ctx, name)
	if err != nil {
		return Check{}, err
	}
	c := Check{Server: srv.Name, Role: srv.Role}
	t := transfer.TargetOf(srv)
	env, done, err := freshConnection(remote.ForDataDir(dir), srv.Name)
	if err != nil {
		return c, err
	}
	defer done()
	if t.Peer {
		err = checkNeighbor(ctx, env, t, &c)
	} else {
		err = checkBackup(ctx, env, t, &c)
	}
	if err != nil {
		return c, err
	}
	jobs, err := s.Store.Jobs(ctx)
	if err != nil {
		return c, err
	}
	st := targetstate.Of(srv, jobs, time.Now())
	if st.State == targetstate.Blocked {
		// The server answers as it should now: whatever blocked it is fixed.
		if err := s.Store.UnblockServer(ctx, s.Actor, srv.Name, srv.BlockedReason); err != nil {
			return c, err
		}
		c.Unblocked = srv.BlockedReason
		srv.BlockedReason = ""
		wake.Retry(dir.WakeSocket())
		st = targetstate.Of(srv, jobs, time.Now())
	}
	c.State, c.Cause, c.Fix = st.State.String(), st.Cause, st.Fix
	c.Pending, c.LagSeconds, c.LastSync = st.Pending, st.Lag.Seconds(), st.LastSync
	return c, nil
}

// freshConnection is env with a control directory of its own: a check
// must reach the server now, not pass through a connection that a sync
// kept open (ssh's ControlPersist) after the server's sshd went away.
// done closes the check's connections to the servers named and removes
// the directory.
func freshConnection(env remote.Env, names ...string) (remote.Env, func(), error) {
	if env.ControlDir == "" {
		return env, func() {}, nil
	}
	tmp, err := os.MkdirTemp(env.ControlDir, "check-")
	if err != nil {
		return env, nil, fmt.Errorf("check: %w", err)
	}
	env.ControlDir = tmp
	return env, func() {
		for _, n := range names {
			env.CloseMasters(n)
		}
		os.RemoveAll(tmp)
	}, nil
}

func checkBackup(ctx context.Context, env remote.Env, t remote.Target, c *Check) error {
	p := shellquote.Quote(t.Path)
	out, err := env.Run(ctx, t,
		"echo rsync=$(rsync --version 2>/dev/null | head -n1); echo git=$(git --version 2>/dev/null); "+
			"mkdir -p "+p+" 2>/dev/null; echo free=$(df -Pk "+p+" | awk 'NR==2 {print $4}'); "+
			"if test -w "+p+"; then echo writable=yes; else echo writable=no; fi")
	if err != nil {
		return err
	}
	for _, l := range strings.Split(string(out), "\n") {
		k, v, _ := strings.Cut(l, "=")
		switch k {
		case "rsync":
			c.Rsync = v
		case "git":
			c.Git = v
		case "free":
			c.FreeKiB, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		case "writable":
			c.Writable = v == "yes"
		}
	}
	return nil
}

// checkNeighbor asks the node who it is twice: the first call sets up
// the (multiplexed) connection, the second measures a round trip.
func checkNeighbor(ctx context.Context, env remote.Env, t remote.Target, c *Check) error {
	var out []byte
	var err error
	for range 2 {
		start := time.Now()
		if out, err = env.Run(ctx, t, "cpm-peer hello"); err != nil {
			if re := (*remote.Error)(nil); errors.As(err, &re) && strings.Contains(re.Stderr, "Permission denied") {
				return fmt.Errorf("%s does not accept this node: on %s, register it (cpm-admin neighbor discover --add, or server add --peer-key with this node's server pubkey) and approve it", t.Name, t.Name)
			}
			return err
		}
		c.PingMS = float64(time.Since(start).Microseconds()) / 1000
	}
	var h peer.Hello
	if err := json.Unmarshal(out, &h); err != nil {
		return fmt.Errorf("%s: not a cpm node's answer: %w", t.Name, err)
	}
	c.Node, c.Version = h.Name, h.Version
	return nil
}
