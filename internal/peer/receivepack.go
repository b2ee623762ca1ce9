package peer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"cpm/internal/names"
	"cpm/internal/repos"
	"cpm/internal/store"
	"cpm/internal/transfer"
)

// SyncWrite is what the primary asks of a synchronous write into this
// node's replica: the epoch it writes under, the repository generation
// the replica holds once the write is done, and the fingerprint of the
// refs it must then hold (transfer.Fingerprint of the ref lines).
type SyncWrite struct {
	Epoch, Generation int64
	Fingerprint       string
}

// ReceivePack writes a push from origin, the repository's primary under
// w.Epoch, into this node's replica of ORG/REPO: `git receive-pack` on
// the replica (cpm's hooks off: the push was decided and recorded on the
// primary), run by run with the primary's send-pack on its ends, inside
// a store.ReplicaWrite. The replica is said to hold w.Generation only
// when receive-pack succeeded and its refs are exactly those of
// w.Fingerprint; otherwise the write rolls back and the primary's
// send-pack fails, so the push is not counted as replicated here.
func (r *Receiver) ReceivePack(ctx context.Context, origin Origin, rp names.RepoPath, w SyncWrite,
	run func(*exec.Cmd) (int, error)) (int, error) {
	ctx, cancel := r.boundWrite(ctx)
	defer cancel()
	rw, canon, dir, err := r.openWrite(ctx, origin, rp, w, 0)
	if err != nil {
		return 1, err
	}
	defer rw.Rollback()
	if _, err := r.Disk.Open(canon.Org, canon.Repo); err != nil {
		// A replica placed but never synced: the push brings everything.
		if dir, err = r.Disk.Create(ctx, canon.Org, canon.Repo, ""); err != nil {
			return 1, fmt.Errorf("replica %s: %w", canon, err)
		}
	}
	cmd := exec.CommandContext(ctx, "git", append(replicaGit(),
		"-c", "receive.denyDeletes=false", "-c", "receive.denyNonFastForwards=false", "receive-pack", dir)...)
	cmd.Dir = dir
	cmd.Env = repos.Env(dir)
	status, err := run(cmd)
	if err != nil || status != 0 {
		return max(status, 1), err
	}
	if err := commitWrite(ctx, rw, canon, dir, w); err != nil {
		return 1, err
	}
	return 0, nil
}

// openWrite runs every check a synchronous write from origin passes
// before anything is written (ReceivePack and ApplyPack alike) and opens
// the store's side of it; callers defer its Rollback. self is this
// node's id (0: read it now; a replication session reads it once).
func (r *Receiver) openWrite(ctx context.Context, origin Origin, rp names.RepoPath, w SyncWrite, self int64) (*store.ReplicaWrite, names.RepoPath, string, error) {
	if !origin.Node {
		return nil, names.RepoPath{}, "", errors.New("cpm-peer receive-pack is for nodes of this cluster")
	}
	p, dir, err := r.nodeWriteDir(ctx, origin.Name, rp)
	if err != nil {
		return nil, names.RepoPath{}, "", err
	}
	canon := names.RepoPath{Org: p.Org, Repo: p.Name}
	if self == 0 {
		if self, err = r.selfID(ctx); err != nil {
			return nil, names.RepoPath{}, "", err
		}
	}
	// The placement read above is outside the write's transaction:
	// BeginReplicaWrite checks again, under the row's lock, that its
	// primary (origin, by the name just read) still leads at w.Epoch.
	rw, err := r.Store.BeginReplicaWrite(ctx, p.RepoID, p.Primary.ID, self, w.Epoch)
	switch {
	case errors.Is(err, store.ErrNoReplica):
		return nil, names.RepoPath{}, "", fmt.Errorf("%s: %s holds no replica of it", canon, r.Self)
	case err != nil:
		return nil, names.RepoPath{}, "", fmt.Errorf("%s: %w", canon, err)
	}
	if err := rw.Allows(w.Generation); err != nil {
		rw.Rollback()
		return nil, names.RepoPath{}, "", fmt.Errorf("%s: %w", canon, err)
	}
	return rw, canon, dir, nil
}

// selfID is this node's id in the store.
func (r *Receiver) selfID(ctx context.Context) (int64, error) {
	self, err := r.Store.NodeByName(ctx, r.Self)
	if err != nil {
		return 0, fmt.Errorf("node %s: %w", r.Self, err)
	}
	return self.ID, nil
}

// commitWrite records w.Generation for the replica at dir once its refs
// are exactly those the primary announced.
func commitWrite(ctx context.Context, rw *store.ReplicaWrite, canon names.RepoPath, dir string, w SyncWrite) error {
	got, err := refsFingerprint(ctx, dir)
	if err != nil {
		return err
	}
	if got != w.Fingerprint {
		return fmt.Errorf("%s: the replica's refs differ from the primary's after the write", canon)
	}
	if err := rw.Commit(ctx, w.Generation); err != nil {
		return fmt.Errorf("%s: %w", canon, err)
	}
	return nil
}

// refsFingerprint is the fingerprint of the repository's refs, HEAD left
// out (the workers' syncs carry HEAD).
func refsFingerprint(ctx context.Context, dir string) (string, error) {
	out, err := repos.GitOutput(ctx, dir, nil, "for-each-ref", "--format=%(objectname) %(refname)")
	if err != nil {
		return "", fmt.Errorf("read refs: %w", err)
	}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	return transfer.Fingerprint(lines), nil
}

// replicaGit is the start of every git command line that writes a
// primary's push into this node's copy: cpm's hooks off (the primary
// checked the push), and objects and refs on disk for good before the
// replica write commits its generation. git's default syncs only packs;
// a push of a few objects is written loose, and a replica that loses
// power after saying "held" must still hold it.
func replicaGit() []string {
	return []string{"-c", "core.hooksPath=/dev/null", "-c", "core.fsync=committed", "-c", "core.fsyncMethod=fsync"}
}
