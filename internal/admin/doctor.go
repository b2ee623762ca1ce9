package admin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"cpm/internal/datadir"
	"cpm/internal/lfs"
	"cpm/internal/names"
	"cpm/internal/printable"
	"cpm/internal/remote"
	"cpm/internal/replica"
	"cpm/internal/repos"
	"cpm/internal/store"
	"cpm/internal/targetstate"
	"cpm/internal/transfer"
)

// Finding is one check of `doctor`: what was checked, whether it is
// fine, what was found, and what to do about it.
type Finding struct {
	Check  string `json:"check"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// DoctorOptions are doctor's thresholds.
type DoctorOptions struct {
	LagThreshold time.Duration // replication lag above this is a problem
	VerifyEvery  time.Duration // a deep check older than twice this is overdue
	// Deep compares every replica's object files by content now.
	Deep bool
	// StaleAge is how long maintenance leaves what a cut-off push or
	// upload left behind (twice max_session_time; default 24h).
	StaleAge time.Duration
	// SyncReplicas is the sync_replicas setting: with 0 an election
	// takes the best live replica, and doctor judges by the same rule.
	SyncReplicas int
}

// Doctor checks an installation: file modes, hooks, repositories on disk
// against the database, the database's integrity, Git LFS objects and the
// leftovers of cut-off LFS uploads, the pinned host keys,
// every server's reachability, replication lag, and the replicas' object
// files (the last deep checks, or, with Deep, a deep check now).
func (s *Service) Doctor(ctx context.Context, dir datadir.Dir, o DoctorOptions) []Finding {
	lagThreshold := o.LagThreshold
	var out []Finding
	add := func(check string, problems []string, fix, okDetail string) {
		f := Finding{Check: check, OK: len(problems) == 0, Detail: okDetail}
		if !f.OK {
			f.Detail, f.Fix = summarize(problems), fix
		}
		out = append(out, f)
	}
	add("file modes", s.checkModes(dir), "chmod 700 the data dir and 600 the database and private keys; cpm-admin init tightens the data dir", "data dir 0700, database and keys 0600")

	dbProblems, dbDetail := checkDatabase(ctx, s.Store)
	add("database", dbProblems, "check the database setting (cpm-admin config show) and that the server runs; cpm-admin init migrates the schema", dbDetail)

	if err := s.Store.IntegrityCheck(ctx); err != nil {
		fix := "restore cpm.db from a backup's snapshot (cpm-admin promote on the backup)"
		if s.Store.Engine() == "postgres" {
			// Backups hold no snapshot of a PostgreSQL database: its own
			// backups and replicas are where it comes back from.
			fix = "check the PostgreSQL server's log; restore the database from its own backups (pg_dump, a standby): cpm's backups hold repositories only"
		}
		add("database integrity", []string{err.Error()}, fix, "")
	} else {
		add("database integrity", nil, "", integrityDetail(s.Store))
	}

	hooks, disk, n := s.checkRepos(ctx, dir)
	add("hooks", hooks, "run cpm-admin init, which reinstalls them", fmt.Sprintf("cpm's hooks in all %d repositories", n))
	add("repositories on disk", disk, "restore missing repositories from a backup (cpm-admin sync pull); move unknown folders out of DATA/repos", "every repository in the database is on disk, and nothing else is")

	missing, pointers := s.checkLFS(ctx)
	add("lfs objects", missing, "push them again from a clone that has them (git lfs push --all origin), or take them back from a backup (cpm-admin sync pull ORG/REPO --from SERVER)",
		fmt.Sprintf("the %d Git LFS objects that pointers refer to are all stored", pointers))

	add("lfs uploads", s.checkLFSUploads(ctx, o.StaleAge), "maintenance removes them (every repack interval, in cpm-shell serve or cpm-shell replicate); with repack 0, delete them by hand",
		"no temporary files of cut-off Git LFS uploads")

	pins, reach, fixes := s.checkServers(ctx, dir)
	add("pinned host keys", pins, "check the key on the server, then cpm-admin server set NAME --host-key LINE", "every server's host key is pinned")
	add("servers reachable", reach, strings.Join(fixes, "; "), "every server answers and takes syncs")
	if s.self.ID != 0 {
		add("cluster nodes", s.checkNodes(ctx), "start cpm-shell serve (or cpm-shell replicate) on each node that is down; its replicas wait meanwhile",
			"every node of the cluster is up")
		add("failover", s.checkFailover(ctx, o.SyncReplicas), failoverFix, "every repository has a live primary; no refs kept from an old primary; no drain under way")
	}
	rotation, fix := s.checkRotation(ctx, dir)
	add("key rotation", rotation, fix, "no key rotation under way")
	add("replication lag", s.checkLag(ctx, lagThreshold), "see cpm-admin sync status; fix the server, then cpm-admin sync retry", "no replica behind by more than "+lagThreshold.String())
	replicas, checked := s.checkReplicas(ctx, dir, o)
	ok := "every replica's last deep check found nothing wrong"
	if o.Deep {
		ok = fmt.Sprintf("all %d replicas' object files match their source's by content", checked)
	}
	add("replica contents", replicas, "cpm-admin sync verify ORG/REPO --to SERVER --deep --repair sends what is missing or damaged again", ok)
	return out
}

// checkLFS reports the Git LFS objects that pointer files reachable in
// this node's repositories refer to but that are not stored, and how
// many are referred to.
func (s *Service) checkLFS(ctx context.Context) (missing []string, pointers int) {
	rs, err := s.Store.Repos(ctx, "")
	if err != nil {
		return []string{err.Error()}, 0
	}
	for _, r := range rs {
		dir, err := s.Disk.Open(r.Org, r.Name)
		if err != nil {
			continue // "repositories on disk" reports it
		}
		ptrs, err := lfs.Pointers(ctx, dir, repos.Env(dir))
		if err != nil {
			missing = append(missing, r.FullName()+": "+err.Error())
			continue
		}
		objs := lfs.Objects{Dir: lfs.ObjectsDir(dir)}
		for _, p := range ptrs {
			pointers++
			if size, ok, err := objs.Size(p.OID); err != nil || !ok || size != p.Size {
				missing = append(missing, fmt.Sprintf("%s: %s (%d bytes)", r.FullName(), p.OID, p.Size))
			}
		}
	}
	return missing, pointers
}

// checkReplicas reports replicas whose object files are missing or
// damaged: by their last deep check, overdue deep checks, and with
// o.Deep a deep check of every current replica now.
func (s *Service) checkReplicas(ctx context.Context, dir datadir.Dir, o DoctorOptions) (problems []string, checked int) {
	jobs, err := s.Store.Jobs(ctx)
	if err != nil {
		return []string{err.Error()}, 0
	}
	servers, err := s.Store.Servers(ctx)
	if err != nil {
		return []string{err.Error()}, 0
	}
	byID := map[int64]store.Server{}
	for _, srv := range servers {
		byID[srv.ID] = srv
	}
	syncer := transfer.NewSyncer(dir, s.Disk)
	for _, j := range jobs {
		srv := byID[j.ServerID]
		in := targetstate.Of(srv, nil, time.Now()).Up() && transfer.InScope(srv.RepoPatterns, j.Repo)
		// In a cluster the primary's copy is the source: another node's
		// repositories are its doctor's to check.
		mine := j.PrimaryID == 0 || j.PrimaryID == s.self.ID
		if !in || !j.Done() || !mine {
			continue
		}
		if o.Deep {
			rp, err := names.ParseRepoPath(j.Repo)
			if err != nil {
				continue
			}
			d, err := syncer.Check(ctx, rp, transfer.TargetOf(srv), true)
			checked++
			switch {
			case err != nil:
				problems = append(problems, printable.Line(err.Error()))
			case !d.OK():
				problems = append(problems, j.Repo+" on "+srv.Name+": "+d.String())
			}
			continue
		}
		switch {
		case strings.HasPrefix(j.DeepResult, "not repaired") || strings.HasPrefix(j.DeepResult, "repair failed"):
			problems = append(problems, j.Repo+" on "+srv.Name+": "+j.DeepResult)
		case o.VerifyEvery > 0 && !j.DeepCheckedAt.IsZero() && time.Since(j.DeepCheckedAt) > 2*o.VerifyEvery:
			problems = append(problems, fmt.Sprintf("%s on %s: last deep check %s ago (verify_every %s)", j.Repo, srv.Name, time.Since(j.DeepCheckedAt).Round(time.Hour), o.VerifyEvery))
		}
	}
	return problems, checked
}

func summarize(problems []string) string {
	const show = 5
	if len(problems) <= show {
		return strings.Join(problems, "; ")
	}
	return strings.Join(problems[:show], "; ") + fmt.Sprintf("; and %d more", len(problems)-show)
}

func (s *Service) checkModes(dir datadir.Dir) []string {
	var problems []string
	// On PostgreSQL the secret in the data directory is the recorded URL.
	db := dir.DB()
	if s.Store.Engine() == "postgres" {
		db = dir.DatabaseFile()
	}
	for _, f := range []struct {
		path string
		want fs.FileMode
	}{
		{dir.String(), 0o700},
		{db, 0o600},
		{dir.HostKey(), 0o600},
		{dir.ReplicationKey(), 0o600},
	} {
		fi, err := os.Stat(f.path)
		if errors.Is(err, fs.ErrNotExist) && f.path == dir.HostKey() {
			continue // created by the first cpm-shell serve
		}
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if fi.Mode().Perm()&^f.want != 0 {
			problems = append(problems, fmt.Sprintf("%s is %04o, want %04o", f.path, fi.Mode().Perm(), f.want))
		}
	}
	return problems
}

// checkRepos compares the database's repositories with the disk.
func (s *Service) checkRepos(ctx context.Context, dir datadir.Dir) (hooks, disk []string, n int) {
	rs, err := s.Store.Repos(ctx, "")
	if err != nil {
		return []string{err.Error()}, nil, 0
	}
	held, err := s.holds(ctx)
	if err != nil {
		return []string{err.Error()}, nil, 0
	}
	known := map[string]bool{}
	for _, r := range rs {
		known[strings.ToLower(r.FullName())] = true
		if held != nil && !held[r.ID] {
			continue // another node's, not (yet) replicated here
		}
		p, err := s.Disk.Open(r.Org, r.Name)
		if err != nil {
			disk = append(disk, r.FullName()+" is missing on disk")
			continue
		}
		if s.Disk.Hooks.Bin != "" && !s.Disk.Hooks.Installed(p) {
			hooks = append(hooks, r.FullName()+" lacks cpm's hooks")
		}
	}
	// Folders that neither the database nor a neighbour's metadata knows.
	replicas := replica.New(dir.Peers())
	defer replicas.Close()
	found, _ := filepath.Glob(filepath.Join(s.Disk.Dir, "*", "*.git"))
	for _, p := range found {
		org, repo := filepath.Base(filepath.Dir(p)), strings.TrimSuffix(filepath.Base(p), ".git")
		if known[strings.ToLower(org+"/"+repo)] {
			continue
		}
		if _, _, err := replicas.Find(ctx, org, repo); err == nil {
			continue
		}
		disk = append(disk, org+"/"+repo+" is on disk but not in the database")
	}
	return hooks, disk, len(rs)
}

// checkServers checks the pins, each server's state, and asks every
// server in use for a sign of life; fixes has one step per problem.
func (s *Service) checkServers(ctx context.Context, dir datadir.Dir) (pins, problems, fixes []string) {
	statuses, err := s.ServerStatuses(ctx)
	if err != nil {
		return []string{err.Error()}, nil, nil
	}
	known, _ := os.ReadFile(dir.KnownHosts())
	var names []string
	for _, st := range statuses {
		names = append(names, st.Name)
	}
	env, done, err := freshConnection(remote.ForDataDir(dir), names...)
	if err != nil {
		return nil, []string{err.Error()}, nil
	}
	defer done()
	for _, st := range statuses {
		srv := st.Server
		if srv.HostKey == "" {
			pins = append(pins, srv.Name+" has no pinned host key")
		} else if !strings.Contains(string(known), remote.HostKeyAlias(srv.Name)+" "+srv.HostKey+"\n") {
			pins = append(pins, srv.Name+"'s pinned key is not in "+dir.KnownHosts())
		}
		if st.status.State == targetstate.Unapproved || st.status.State == targetstate.Disabled {
			continue // not in use
		}
		if st.Fix != "" {
			problems = append(problems, srv.Name+": "+st.Line())
			fixes = append(fixes, srv.Name+": "+st.Fix)
			continue
		}
		t := transfer.TargetOf(srv)
		cmd := "true"
		if t.Peer {
			cmd = "cpm-peer hello"
		}
		cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		_, err := env.Run(cctx, t, cmd)
		cancel()
		if err != nil {
			var re *remote.Error
			problems = append(problems, srv.Name+": "+printable.Line(err.Error()))
			fixes = append(fixes, srv.Name+": "+targetstate.FixFor(srv, err.Error(), errors.As(err, &re) && re.Blocking()))
		}
	}
	return pins, problems, fixes
}

// checkRotation reports a replication key rotation that has not
// finished: the servers still on the old key, and what to do.
func (s *Service) checkRotation(ctx context.Context, dir datadir.Dir) ([]string, string) {
	if _, err := os.Stat(dir.NextReplicationKey()); err != nil {
		return nil, ""
	}
	servers, err := s.Store.Servers(ctx)
	if err != nil {
		return []string{err.Error()}, ""
	}
	var behind []string
	for _, srv := range servers {
		if srv.KeyState != "done" {
			behind = append(behind, srv.Name)
		}
	}
	problems := []string{fmt.Sprintf("a replication key rotation is under way; not switched yet: %s", strings.Join(behind, ", "))}
	return problems, "make each of them reachable and its authorized_keys writable by its ssh user (install -o USER -m 600), then cpm-admin server rotate-key, which names what still refuses"
}

func (s *Service) checkLag(ctx context.Context, threshold time.Duration) []string {
	jobs, err := s.Store.Jobs(ctx)
	if err != nil {
		return []string{err.Error()}
	}
	var problems []string
	now := time.Now()
	for _, j := range jobs {
		if lag := j.Lag(now); lag > threshold {
			problems = append(problems, fmt.Sprintf("%s on %s is %s behind (%s)", j.Repo, j.Server, lag.Round(time.Second), j.State))
		}
	}
	return problems
}
