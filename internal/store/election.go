package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Causes of a change of primary, as metrics and audit rows name them.
const (
	CauseLeaseExpired = "lease_expired" // the primary's lease ran out: failover
	CauseMove         = "move"          // repo move: a planned handover
	CauseDrain        = "drain"         // node drain: a planned handover
)

// leaseLive is the one rule for a node that is up, as SQL on the servers row
// named alias: its lease runs past the database's now. node list, doctor,
// placement, elections and the write fence all judge by it.
func leaseLive(d dialect, alias string) string { return alias + ".lease_until > " + d.clock() }

// Election is one change of a repository's primary.
type Election struct {
	RepoID int64
	Repo   string // ORG/REPO
	// From and To name the old and the new primary.
	From, To string
	// Epoch is the repository's new epoch; Generation its generation,
	// which the new primary holds.
	Epoch, Generation int64
	Cause             string
	// Without is how long the repository had no primary that could take
	// its writes: from the old primary's last heartbeat to the election,
	// by the database's clock (0 for a handover).
	Without time.Duration
}

// ElectPrimaries replaces the primary of every repository whose
// primary's lease ran out (by the database's clock) with its most
// up-to-date live replica, each repository in one transaction; it
// returns the elections it made. A replica qualifies only if it holds
// the highest generation any replica of the repository holds (the bar,
// counted over dead replicas too): with sync_replicas ≥ 1 every
// acknowledged push reached at least one replica, so the bar covers it,
// and while only a dead node holds it there is no election. With
// syncReplicas 0 the best live replica wins (the documented window). A
// replica that never synced (-1) never wins. Several electors at once
// elect once: each repository's row is taken FOR UPDATE SKIP LOCKED and
// checked again. SQLite has no cluster: nothing to elect.
func (s *Store) ElectPrimaries(ctx context.Context, a Actor, syncReplicas int) ([]Election, error) {
	if s.db.d != postgres {
		return nil, nil
	}
	ids, err := s.orphanedRepos(ctx)
	if err != nil {
		return nil, err
	}
	var out []Election
	for _, id := range ids {
		e, ok, err := s.elect(ctx, a, id, syncReplicas)
		if err != nil {
			return out, err
		}
		if ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// orphanedRepos lists the repositories whose primary's lease ran out and
// that have a replica on a live node (without one nobody could win).
func (s *Store) orphanedRepos(ctx context.Context) ([]int64, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT r.id FROM repos r JOIN servers p ON p.id = r.primary_id
		WHERE NOT `+leaseLive(s.db.d, "p")+`
		  AND EXISTS (SELECT 1 FROM replication_jobs j JOIN servers n ON n.id = j.server_id
		              WHERE j.repo_id = r.id AND n.role = 'node' AND `+leaseLive(s.db.d, "n")+`)
		ORDER BY r.id`)
	if err != nil {
		return nil, fmt.Errorf("find repositories without a live primary: %w", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("find repositories without a live primary: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// orphan is a repository whose primary's lease ran out, as the election
// reads it under its row lock.
type orphan struct {
	id, primary, epoch, generation int64
	repo, from                     string
	without                        time.Duration
}

// elect runs one repository's election in one transaction; ok false when
// there was none (another elector holds the row, the primary renewed
// meanwhile, or no replica qualifies).
func (s *Store) elect(ctx context.Context, a Actor, repoID int64, syncReplicas int) (Election, bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return Election{}, false, fmt.Errorf("elect a primary: %w", err)
	}
	defer tx.Rollback()
	o, ok, err := lockOrphan(ctx, tx, repoID)
	if err != nil || !ok {
		return Election{}, false, err
	}
	replicas, err := nodeReplicas(ctx, tx, tx.d, repoID)
	if err != nil {
		return Election{}, false, err
	}
	win, ok := electWinner(replicas, syncReplicas)
	if !ok {
		return Election{}, false, nil
	}
	e := Election{RepoID: o.id, Repo: o.repo, From: o.from, To: win.name, Epoch: o.epoch + 1,
		Generation: o.generation, Cause: CauseLeaseExpired, Without: o.without}
	if err := installPrimary(ctx, tx, e, o.primary, win.id); err != nil {
		return Election{}, false, err
	}
	details := map[string]any{"from": e.From, "to": e.To, "epoch": e.Epoch, "generation": e.Generation,
		"replica_generation": win.generation, "cause": e.Cause}
	if err := insertAudit(ctx, tx, a, "repo.failover", e.Repo, details); err != nil {
		return Election{}, false, fmt.Errorf("elect a primary of %s: audit: %w", e.Repo, err)
	}
	if err := tx.Commit(); err != nil {
		return Election{}, false, fmt.Errorf("elect a primary of %s: %w", e.Repo, err)
	}
	return e, true, nil
}

// lockOrphan takes the repository's row unless another transaction holds
// it (an elector, or a push being recorded: SKIP LOCKED, next round), and
// checks again, under the lock, that its primary's lease ran out.
func lockOrphan(ctx context.Context, tx *Tx, repoID int64) (orphan, bool, error) {
	o := orphan{id: repoID}
	var primary sql.NullInt64
	err := tx.QueryRowContext(ctx, `
		SELECT r.primary_id, r.epoch, r.generation, org.name || '/' || r.name FROM repos r JOIN orgs org ON org.id = r.org_id
		WHERE r.id = ? FOR UPDATE OF r SKIP LOCKED`, repoID).Scan(&primary, &o.epoch, &o.generation, &o.repo)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && !primary.Valid) {
		return orphan{}, false, nil
	}
	if err != nil {
		return orphan{}, false, fmt.Errorf("elect a primary: %w", err)
	}
	o.primary = primary.Int64
	var alive bool
	var dbNow, heartbeat string
	err = tx.QueryRowContext(ctx, `SELECT p.name, `+leaseLive(tx.d, "p")+`, `+tx.d.clock()+`, p.heartbeat_at
		FROM servers p WHERE p.id = ?`, o.primary).Scan(&o.from, &alive, &dbNow, &heartbeat)
	if err != nil {
		return orphan{}, false, fmt.Errorf("elect a primary of %s: %w", o.repo, err)
	}
	if hb := parseTime(heartbeat); !hb.IsZero() {
		o.without = max(parseTime(dbNow).Sub(hb), 0)
	}
	return o, !alive, nil
}

// replicaNode is one node's replica as the election weighs it.
type replicaNode struct {
	id         int64
	name       string
	generation int64 // the generation its last verified copy holds; -1 none
	live       bool  // its lease holds, by the database's clock
	draining   bool
	primaries  int
}

// rowsQuerier is a connection or a transaction.
type rowsQuerier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// nodeReplicas reads every node replica of the repository, live or not.
func nodeReplicas(ctx context.Context, q rowsQuerier, d dialect, repoID int64) ([]replicaNode, error) {
	rows, err := q.QueryContext(ctx, `
		SELECT s.id, s.name, j.repo_generation, `+leaseLive(d, "s")+`, s.draining,
		       (SELECT count(*) FROM repos p WHERE p.primary_id = s.id)
		FROM replication_jobs j JOIN servers s ON s.id = j.server_id
		WHERE j.repo_id = ? AND s.role = 'node'`, repoID)
	if err != nil {
		return nil, fmt.Errorf("replicas of repository %d: %w", repoID, err)
	}
	defer rows.Close()
	var out []replicaNode
	for rows.Next() {
		var r replicaNode
		if err := rows.Scan(&r.id, &r.name, &r.generation, &r.live, &r.draining, &r.primaries); err != nil {
			return nil, fmt.Errorf("replicas of repository %d: %w", repoID, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// electWinner chooses the new primary among a repository's replicas: a
// live one that holds a copy (generation ≥ 0) and, unless syncReplicas is
// 0, the bar (the highest generation of any replica, dead ones too);
// nodes not draining before draining ones, then the highest generation,
// the fewest primaries, the name.
func electWinner(replicas []replicaNode, syncReplicas int) (replicaNode, bool) {
	bar := int64(0)
	for _, r := range replicas {
		if syncReplicas > 0 {
			bar = max(bar, r.generation)
		}
	}
	var pool []replicaNode
	for _, r := range replicas {
		if r.live && r.generation >= bar {
			pool = append(pool, r)
		}
	}
	if len(pool) == 0 {
		return replicaNode{}, false
	}
	sort.Slice(pool, func(i, j int) bool {
		x, y := pool[i], pool[j]
		switch {
		case x.draining != y.draining:
			return !x.draining
		case x.generation != y.generation:
			return x.generation > y.generation
		case x.primaries != y.primaries:
			return x.primaries < y.primaries
		}
		return x.name < y.name
	})
	return pool[0], true
}

// installPrimary makes the winner the primary under the new epoch: its
// replica row goes, the old primary becomes a replica that holds nothing
// yet (-1: it serves no read until synced) and whose refs the new primary
// saves first (diverge_epoch), and every other copy is synced from the
// new primary (pending, any claim of the old one's workers dropped).
func installPrimary(ctx context.Context, tx *Tx, e Election, oldID, newID int64) error {
	at := now()
	steps := []struct {
		q    string
		args []any
	}{
		{`UPDATE repos SET primary_id = ?, epoch = ?, move_to = NULL WHERE id = ?`, []any{newID, e.Epoch, e.RepoID}},
		{`DELETE FROM replication_jobs WHERE repo_id = ? AND server_id = ?`, []any{e.RepoID, newID}},
		{`UPDATE replication_jobs SET generation = generation + 1, lease_owner = '', lease_until = '',
			state = CASE WHEN state = 'blocked' THEN state ELSE 'pending' END, next_attempt_at = ?
			WHERE repo_id = ?`, []any{at, e.RepoID}},
		{`INSERT INTO replication_jobs AS j (repo_id, server_id, generation, state, next_attempt_at, dirty_since, repo_generation, diverge_epoch)
			VALUES (?1, ?2, 1, 'pending', ?3, ?3, -1, ?4)
			ON CONFLICT (repo_id, server_id) DO UPDATE SET repo_generation = -1, diverge_epoch = excluded.diverge_epoch,
				state = 'pending', next_attempt_at = excluded.next_attempt_at, lease_owner = '', lease_until = ''`,
			[]any{e.RepoID, oldID, at, e.Epoch}},
	}
	for _, st := range steps {
		if _, err := tx.ExecContext(ctx, st.q, st.args...); err != nil {
			return fmt.Errorf("elect %s primary of %s: %w", e.To, e.Repo, err)
		}
	}
	return nil
}

// LeaseHeld reports whether node id's lease holds now, by the database's
// clock: the fence of a node's processes that keep no lease themselves.
func (s *Store) LeaseHeld(ctx context.Context, nodeID int64) (bool, error) {
	var held bool
	err := s.db.QueryRowContext(ctx, `SELECT `+leaseLive(s.db.d, "n")+` FROM servers n WHERE n.id = ? AND n.role = 'node'`, nodeID).Scan(&held)
	if errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("lease of node %d: %w", nodeID, ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("lease of node %d: %w", nodeID, err)
	}
	return held, nil
}

// Waiting is a repository whose primary's lease ran out and that no
// replica can take over yet, and why.
type Waiting struct {
	Repo    string
	Primary string // the node whose lease ran out
	// Why: "waiting for a node that holds generation N (A, B: down)", or
	// that no replica holds a copy.
	Why string
}

// WaitingForPrimary lists the repositories without a live primary that
// ElectPrimaries cannot give one now, by the election's own rule (doctor).
func (s *Store) WaitingForPrimary(ctx context.Context, syncReplicas int) ([]Waiting, error) {
	if s.db.d != postgres {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx, `
		SELECT r.id, o.name || '/' || r.name, p.name FROM repos r JOIN orgs o ON o.id = r.org_id JOIN servers p ON p.id = r.primary_id
		WHERE NOT `+leaseLive(s.db.d, "p")+` ORDER BY o.name, r.name`)
	if err != nil {
		return nil, fmt.Errorf("repositories without a live primary: %w", err)
	}
	type dead struct {
		id int64
		w  Waiting
	}
	var all []dead
	for rows.Next() {
		var d dead
		if err := rows.Scan(&d.id, &d.w.Repo, &d.w.Primary); err != nil {
			rows.Close()
			return nil, fmt.Errorf("repositories without a live primary: %w", err)
		}
		all = append(all, d)
	}
	rows.Close()
	var out []Waiting
	for _, d := range all {
		replicas, err := nodeReplicas(ctx, s.db, s.db.d, d.id)
		if err != nil {
			return nil, err
		}
		if _, ok := electWinner(replicas, syncReplicas); !ok {
			d.w.Why = whyNoWinner(replicas, syncReplicas)
			out = append(out, d.w)
		}
	}
	return out, nil
}

// whyNoWinner says what an election waits for.
func whyNoWinner(replicas []replicaNode, syncReplicas int) string {
	bar := int64(-1)
	for _, r := range replicas {
		bar = max(bar, r.generation)
	}
	if bar < 0 {
		return "no replica holds a copy yet"
	}
	if syncReplicas <= 0 {
		return "no live replica holds a copy"
	}
	var holders []string
	for _, r := range replicas {
		if r.generation == bar {
			holders = append(holders, r.name)
		}
	}
	sort.Strings(holders)
	return fmt.Sprintf("waiting for a node that holds generation %d (%s: down)", bar, strings.Join(holders, ", "))
}
