package transfer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"cpm/internal/printable"
	"cpm/internal/remote"
	"cpm/internal/shellquote"
	"cpm/internal/store"
)

// SnapshotDir is where a backup server keeps the snapshot of the
// database, under its --path: a name no organisation can have, since
// names never start with a dot.
const SnapshotDir = ".cpm"

// SnapshotName is the snapshot's file name in SnapshotDir.
const SnapshotName = "cpm.db"

// OriginKeysName, in SnapshotDir, holds the public keys the origin
// reaches the backup with, so that promote there knows which key to fence.
const OriginKeysName = "origin-keys"

// Publisher delivers this node's metadata to its servers after a change:
// each backup gets a consistent snapshot of the database (online backup,
// never a copy of the live file), so that `cpm-admin promote` there
// restores every user, key, organisation and permission; each neighbour
// gets the authorization metadata of the repositories it replicates,
// which it applies in one transaction.
type Publisher struct {
	Store  *store.Store
	Syncer *Syncer

	mu   sync.Mutex
	busy map[int64]*sync.Mutex
}

// Delivery is one delivered generation.
type Delivery struct {
	Kind       string // "snapshot" or "meta"
	Generation int64
	Bytes      int64
	Duration   time.Duration
}

// Ensure brings srv up to the current metadata generation, unless it is
// there already (then the Delivery is zero).
func (p *Publisher) Ensure(ctx context.Context, srv store.Server) (Delivery, error) {
	lock := p.lock(srv.ID)
	lock.Lock()
	defer lock.Unlock()
	gen, err := p.Store.MetaGeneration(ctx)
	if err != nil {
		return Delivery{}, err
	}
	// Another delivery may have finished while this one waited.
	if cur, err := p.Store.ServerByName(ctx, srv.Name); err == nil {
		srv = cur
	}
	if srv.MetaGeneration >= gen {
		return Delivery{}, nil
	}
	start := time.Now()
	t := TargetOf(srv)
	d := Delivery{Generation: gen}
	if t.Peer {
		d.Kind = "meta"
		d.Bytes, d.Generation, err = p.sendMeta(ctx, t, srv.RepoPatterns)
	} else {
		d.Kind = "snapshot"
		d.Bytes, err = p.sendSnapshot(ctx, t)
	}
	if err != nil {
		err = fmt.Errorf("deliver %s to %s: %w", d.Kind, srv.Name, err)
		if ctx.Err() == nil {
			// On the server's row, for server list, doctor and the
			// metrics: a delivery that keeps failing must not look ok.
			if rerr := p.Store.SetMetaError(ctx, srv.ID, printable.Line(err.Error())); rerr != nil {
				return d, errors.Join(err, rerr)
			}
		}
		return d, err
	}
	d.Duration = time.Since(start)
	return d, p.Store.SetMetaGeneration(ctx, srv.ID, d.Generation)
}

func (p *Publisher) lock(id int64) *sync.Mutex {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.busy == nil {
		p.busy = map[int64]*sync.Mutex{}
	}
	if p.busy[id] == nil {
		p.busy[id] = &sync.Mutex{}
	}
	return p.busy[id]
}

func (p *Publisher) sendMeta(ctx context.Context, t remote.Target, scope string) (int64, int64, error) {
	m, err := p.Store.ExportMeta(ctx)
	if err != nil {
		return 0, 0, err
	}
	// A neighbour learns only of the repositories it replicates.
	m = m.Keep(func(org, repo string) bool { return InScope(scope, org+"/"+repo) })
	body, err := json.Marshal(m)
	if err != nil {
		return 0, 0, err
	}
	if _, err := p.Syncer.Remote.RunInput(ctx, t, "cpm-peer meta", bytes.NewReader(body)); err != nil {
		return 0, 0, err
	}
	return int64(len(body)), m.Generation, nil
}

// originKeys are this node's replication public keys, current and next.
func (p *Publisher) originKeys() []string {
	var keys []string
	for _, f := range []string{p.Syncer.Remote.Key, p.Syncer.Remote.NextKey} {
		if f == "" {
			continue
		}
		if b, err := os.ReadFile(f + ".pub"); err == nil {
			if k, err := remote.ParseHostKey(string(b)); err == nil {
				keys = append(keys, k)
			}
		}
	}
	return keys
}

func (p *Publisher) sendSnapshot(ctx context.Context, t remote.Target) (int64, error) {
	if p.Store.Engine() == "postgres" {
		return p.sendDatabasePointer(ctx, t)
	}
	local := filepath.Join(p.Syncer.TempDir, "snapshot-"+strconv.Itoa(os.Getpid())+"-"+t.Name+".db")
	if err := p.Store.Snapshot(ctx, local); err != nil {
		return 0, err
	}
	defer os.Remove(local)
	dir := t.Path + "/" + SnapshotDir
	cmd := "mkdir -p -m 700 " + shellquote.Quote(dir)
	if keys := p.originKeys(); len(keys) > 0 {
		cmd += " && printf '%s\\n'"
		for _, k := range keys {
			cmd += " " + shellquote.Quote(k)
		}
		cmd += " > " + shellquote.Quote(dir+"/"+OriginKeysName)
	}
	if _, err := p.Syncer.Remote.Run(ctx, t, cmd); err != nil {
		return 0, err
	}
	// The backup holds the previous snapshot or this one, whole; one
	// without rsync gets it by tar, as it gets the repositories.
	n, err := p.Syncer.copierFor(t).deliver(ctx, t, local, dir, SnapshotName)
	if p.Syncer.fallBack(t, err) {
		n, err = p.Syncer.copierFor(t).deliver(ctx, t, local, dir, SnapshotName)
	}
	return n, err
}
