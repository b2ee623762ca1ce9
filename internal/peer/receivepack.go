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
	rw, canon, dir, err := r.openWrite(ctx, origin, rp, w)
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
// the store's side of it; callers defer its Rollback.
func (r *Receiver) openWrite(ctx context.Context, origin Origin, rp names.RepoPath, w SyncWrite) (*store.ReplicaWrite, names.RepoPath, string, error) {
	if !origin.Node {
		return nil, names.RepoPath{}, "", errors.New("cpm-peer receive-pack is for nodes of this cluster")
	}
	canon, dir, err := r.nodeCopyDir(ctx, origin.Name, rp, true)
	if err != nil {
		return nil, names.RepoPath{}, "", err
	}
	rw, err := r.beginWrite(ctx, origin.Name, canon, w.Epoch)
	if err != nil {
		return nil, names.RepoPath{}, "", err
	}
	if err := rw.Allows(w.Generation); err != nil {
		rw.Rollback()
		return nil, names.RepoPath{}, "", fmt.Errorf("%s: %w", canon, err)
	}
	return rw, canon, dir, nil
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

// beginWrite opens the store's side of the write, for the nodes named
// origin and r.Self.
func (r *Receiver) beginWrite(ctx context.Context, origin string, rp names.RepoPath, epoch int64) (*store.ReplicaWrite, error) {
	from, err := r.Store.NodeByName(ctx, origin)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", origin, err)
	}
	self, err := r.Store.NodeByName(ctx, r.Self)
	if err != nil {
		return nil, fmt.Errorf("node %s: %w", r.Self, err)
	}
	repo, err := r.Store.Repo(ctx, rp.Org, rp.Repo)
	if err != nil {
		return nil, err
	}
	rw, err := r.Store.BeginReplicaWrite(ctx, repo.ID, from.ID, self.ID, epoch)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rp, err)
	}
	return rw, nil
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
