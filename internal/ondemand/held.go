package ondemand

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"cpm/internal/names"
	"cpm/internal/printable"
	"cpm/internal/remote"
	"cpm/internal/shellquote"
	"cpm/internal/store"
	"cpm/internal/transfer"
)

// Held is a repository that a server holds for this node, as `repo list
// --on` shows it.
type Held struct {
	Repo        string `json:"repo"`
	Fingerprint string `json:"fingerprint"` // of the replica's refs (those the server is limited to)
	// Local is the fingerprint of this node's copy, of the same refs;
	// empty when this node has no such repository.
	Local string `json:"local_fingerprint"`
	Match bool   `json:"match"`
	// Error says why the replica's refs could not be read.
	Error string `json:"error,omitempty"`
}

// Held lists the repositories server holds for this node. A backup's
// folder is listed, so that what this node lost shows too; a neighbour
// is asked for each of this node's repositories in its scope.
func (o OnDemand) Held(ctx context.Context, server string) ([]Held, error) {
	srv, err := o.Store.ServerByName(ctx, server)
	if err != nil {
		return nil, err
	}
	t, syncer := transfer.TargetOf(srv), o.syncer()
	var paths []names.RepoPath
	if t.Peer {
		paths, err = o.ownInScope(ctx, srv)
	} else {
		paths, err = listBackup(ctx, syncer.Remote, t)
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", srv.Name, err)
	}
	out := make([]Held, 0, len(paths))
	for _, rp := range paths {
		_, refs, err := transfer.RemoteRefs(ctx, syncer.Remote, t, rp)
		var re *remote.Error
		switch {
		case errors.As(err, &re) && (re.Unreachable() || re.Blocking()):
			return nil, fmt.Errorf("list %s: %w", srv.Name, err)
		case err != nil && t.Peer:
			continue // the neighbour does not hold it (yet)
		}
		h := Held{Repo: rp.String()}
		if err != nil {
			h.Error = printable.Line(err.Error())
		} else {
			h.Fingerprint = transfer.FingerprintOnly(refs, t.Refs)
		}
		if dir, err := o.Disk.Open(rp.Org, rp.Repo); err == nil {
			if snap, err := transfer.TakeSnapshot(ctx, dir); err == nil {
				h.Local = snap.Only(t.Refs).Fingerprint
			}
		}
		h.Match = h.Error == "" && h.Local == h.Fingerprint
		out = append(out, h)
	}
	return out, nil
}

// ownInScope are this node's repositories that srv replicates.
func (o OnDemand) ownInScope(ctx context.Context, srv store.Server) ([]names.RepoPath, error) {
	rs, err := o.Store.Repos(ctx, "")
	if err != nil {
		return nil, err
	}
	var paths []names.RepoPath
	for _, r := range rs {
		if transfer.InScope(srv.RepoPatterns, r.FullName()) {
			paths = append(paths, names.RepoPath{Org: r.Org, Repo: r.Name})
		}
	}
	return paths, nil
}

// listBackup lists the replicas under a backup's path, in name order.
// Names that are not valid repository names are not cpm's and are left
// out (they would only be printed on the operator's terminal).
func listBackup(ctx context.Context, env remote.Env, t remote.Target) ([]names.RepoPath, error) {
	script := "cd " + shellquote.Quote(t.Path) + " 2>/dev/null || exit 0; for d in */*.git; do [ -f \"$d/HEAD\" ] && printf '%s\\n' \"$d\"; done; exit 0"
	out, err := env.Run(ctx, t, remote.Fence(t, script))
	if err != nil {
		return nil, err
	}
	var paths []names.RepoPath
	for _, l := range strings.Split(string(out), "\n") {
		rp, err := names.ParseRepoPath(strings.TrimSpace(l))
		if err != nil || !strings.HasSuffix(strings.TrimSpace(l), ".git") {
			continue
		}
		paths = append(paths, rp)
	}
	sort.Slice(paths, func(i, j int) bool { return paths[i].String() < paths[j].String() })
	return paths, nil
}
