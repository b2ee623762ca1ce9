package transfer

import (
	"context"
	"strings"

	"cpm/internal/names"
	"cpm/internal/remote"
	"cpm/internal/shellquote"
	"cpm/internal/store"
)

// A backup server is a plain ssh account: cpm runs a few shell commands
// and rsync there, on paths under the server's --path. A neighbour is a
// cpm node whose ssh port runs only git and `cpm-peer` commands: rsync
// talks to a daemon module that the neighbour configures for exactly one
// replica, and the neighbour creates and reads the replica itself. These
// helpers hide the difference from the sync steps.

// replicaPath is where a backup server keeps ORG/REPO.
func replicaPath(t remote.Target, repo names.RepoPath) string {
	return t.Path + "/" + repo.Org + "/" + repo.Repo + ".git"
}

// area is a part of a replica that rsync reads or writes.
type area int

const (
	areaTop     area = iota // the replica's folder (refs, skeleton)
	areaObjects             // objects/
	areaLFS                 // lfs/: Git LFS objects
)

// endpoint is rsync's spec for an area of the replica on t, with the
// options that reaching it needs. write says which way the transfer goes.
func endpoint(t remote.Target, repo names.RepoPath, a area, write bool) (string, []string) {
	if !t.Peer {
		p := replicaPath(t, repo) + "/" + [...]string{"", "objects/", "lfs/"}[a]
		return remote.Dest(t, p), nil
	}
	module := [...]string{"repo/", "objects/", "lfs/"}[a]
	verb := "rsync-out"
	if write {
		verb = "rsync-in"
	}
	return t.User + "@" + t.Host + "::" + module, []string{"--rsync-path=cpm-peer " + verb + " " + repo.String()}
}

// prepare makes sure the replica's folder exists on t.
func (s *Syncer) prepare(ctx context.Context, t remote.Target, repo names.RepoPath) error {
	var err error
	if t.Peer {
		_, err = s.Remote.Run(ctx, t, "cpm-peer prepare "+repo.String())
	} else {
		_, err = s.Remote.Run(ctx, t, "mkdir -p "+shellquote.Quote(replicaPath(t, repo)))
	}
	return err
}

// RemoteRefs reads the replica's HEAD file and its `git show-ref --head`
// lines on t.
func RemoteRefs(ctx context.Context, env remote.Env, t remote.Target, repo names.RepoPath) (head string, refs []string, err error) {
	var out []byte
	if t.Peer {
		out, err = env.Run(ctx, t, "cpm-peer refs "+repo.String())
	} else {
		p := shellquote.Quote(replicaPath(t, repo))
		// show-ref exits 1 when there are no refs at all; that is an answer.
		out, err = env.Run(ctx, t, "cat "+p+"/HEAD && { git -C "+p+" show-ref --head; test $? -le 1; }")
	}
	if err != nil {
		return "", nil, err
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	head = strings.TrimSpace(lines[0])
	for _, l := range lines[1:] {
		if l = strings.TrimSpace(l); l != "" {
			refs = append(refs, l)
		}
	}
	return head, refs, nil
}

// RemoteFingerprint computes the fingerprint of the replica on t (of the
// refs t is limited to, if it is).
func RemoteFingerprint(ctx context.Context, env remote.Env, t remote.Target, repo names.RepoPath) (string, error) {
	_, refs, err := RemoteRefs(ctx, env, t, repo)
	if err != nil {
		return "", err
	}
	return FingerprintOnly(refs, t.Refs), nil
}

// push copies local src to the replica on t.
func (s *Syncer) push(ctx context.Context, t remote.Target, repo names.RepoPath, src string, a area, extra ...string) (Result, error) {
	dst, opts := endpoint(t, repo, a, true)
	return s.rsyncArgs(ctx, t, append(append(opts, extra...), src, dst))
}

// fetch copies an area of the replica on t to local dst.
func (s *Syncer) fetch(ctx context.Context, t remote.Target, repo names.RepoPath, a area, dst string, extra ...string) (Result, error) {
	src, opts := endpoint(t, repo, a, false)
	return s.rsyncArgs(ctx, t, append(append(opts, extra...), src, dst))
}

// TargetOf turns a stored server into an rsync target. Another node of
// the cluster is reached as a neighbour is (cpm-peer commands, rsync
// into a module for one repository), with no metadata: the database is
// shared.
func TargetOf(s store.Server) remote.Target {
	return remote.Target{Name: s.Name, Host: s.Host, Port: s.Port, User: s.User, Path: s.Path, HostKey: s.HostKey, Peer: s.Role == store.Neighbor || s.Role == store.Node,
		Refs: SplitPatterns(s.RefPatterns), BWLimit: s.BWLimitKBps, Compress: s.Compress, UseNext: s.KeyState != ""}
}
