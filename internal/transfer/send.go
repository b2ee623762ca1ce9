package transfer

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"cpm/internal/names"
	"cpm/internal/remote"
	"cpm/internal/repos"
)

// Synchronous replication writes a push into a replica node's copy with
// git itself (send-pack to the node's `cpm-peer receive-pack`) while the
// pusher waits: git sends only the objects the replica lacks, in one
// pack, over the node's multiplexed ssh connection, in a few round
// trips. The workers' rsync (Sync) brings the rest later: HEAD, LFS
// objects of other sessions, the object files as the primary packed
// them.
//
// Locks: Sync and PruneTarget take the repository's lock, then the
// lock of the repository on that one target; SendPack takes only the
// latter. So a worker's ref snapshot can never be shipped over the newer
// refs a SendPack wrote into the same replica, and a SendPack never waits
// for a sync to another server or for a repack.

// SendPack writes the refs of ORG/REPO, and the objects they need, into
// the replica on node t (git send-pack --mirror --force), as the
// repository's generation that gen reads under the target's lock before
// the refs are read: the replica records that generation only once it
// holds exactly these refs (peer.Receiver.ReceivePack), and only while
// this node is the primary under epoch. The repository's Git LFS objects
// go first. A replica this node wrote into last is written by the fast
// path (packsend.go), any other by git send-pack.
func (s *Syncer) SendPack(ctx context.Context, repo names.RepoPath, t remote.Target, epoch int64, gen func(context.Context) (int64, error)) (Sent, error) {
	if !t.Peer {
		return Sent{}, fmt.Errorf("send-pack to %s: not a node", t.Name)
	}
	dir, err := s.Root.Open(repo.Org, repo.Repo)
	if err != nil {
		return Sent{}, err
	}
	unlock, err := s.lockTarget(ctx, repo, t.Name)
	if err != nil {
		return Sent{}, err
	}
	defer unlock()
	// Taken, not read: a write that fails leaves nothing remembered.
	from, known := s.lastSent(repo, t.Name)
	s.remember(repo, t.Name, nil)
	g, err := gen(ctx)
	if err != nil {
		return Sent{}, err
	}
	snap, err := TakeSnapshot(ctx, dir)
	if err != nil {
		return Sent{}, err
	}
	if hasLFS(dir) {
		if err := s.sendLFS(ctx, t, repo, dir, known); err != nil {
			return Sent{}, err
		}
	}
	sent := Sent{Generation: g}
	if known {
		sent.Via, sent.SessionFailed, sent.Fallback = s.applyPack(ctx, t, repo, dir, from, snap, epoch, g)
	}
	if !known || sent.Fallback != nil {
		sent.Via = ViaSendPack
		if err := s.sendSnapshot(ctx, t, repo, dir, snap, epoch, g); err != nil {
			return Sent{}, err
		}
	}
	s.remember(repo, t.Name, snap.Refs)
	return sent, nil
}

// How SendPack wrote into a replica.
const (
	ViaSession  = "session"   // ref updates and a pack over a replication session
	ViaPack     = "pack"      // the same over an ssh session of its own
	ViaSendPack = "send-pack" // git send-pack
)

// Sent is a write SendPack did.
type Sent struct {
	Generation int64  // what the replica now holds
	Via        string // ViaSession, ViaPack or ViaSendPack
	Fallback   error  // why the fast path failed before send-pack, if it did
	// SessionFailed is why a replication session failed before the
	// one-shot fast path, if one did.
	SessionFailed error
}

// sendSnapshot writes snap into the replica on t with git send-pack,
// which asks the replica what it holds.
func (s *Syncer) sendSnapshot(ctx context.Context, t remote.Target, repo names.RepoPath, dir string, snap Snapshot, epoch, g int64) error {
	work, err := snapshotRepo(s.TempDir, dir, snap)
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	receive := fmt.Sprintf("cpm-peer receive-pack %d %d %s", epoch, g, Fingerprint(snap.Refs))
	return s.sendPack(ctx, t, repo, work, receive)
}

// snapshotRepo lays snap out as a bare repository of its own under tmp
// that borrows dir's objects (alternates): send-pack --mirror then sends
// exactly the snapshot's refs, whatever pushes land meanwhile.
func snapshotRepo(tmp, dir string, snap Snapshot) (string, error) {
	work, err := os.MkdirTemp(tmp, "send-")
	if err != nil {
		return "", fmt.Errorf("snapshot: %w", err)
	}
	err = writeSkeleton(work)
	if err == nil {
		err = snap.write(work)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(work, "objects", "info", "alternates"), []byte(filepath.Join(dir, "objects")+"\n"), 0o644)
	}
	if err != nil {
		os.RemoveAll(work)
		return "", fmt.Errorf("snapshot: %w", err)
	}
	return work, nil
}

// sendLFS copies the LFS objects the replica lacks; rsync's module needs
// the replica's folder, which prepare makes when it is missing (known:
// this node wrote into it last, so it is there).
func (s *Syncer) sendLFS(ctx context.Context, t remote.Target, repo names.RepoPath, dir string, known bool) error {
	if !known {
		if err := s.prepare(ctx, t, repo); err != nil {
			return err
		}
	}
	_, err := s.push(ctx, t, repo, dir+"/lfs/", areaLFS, append([]string{"--ignore-existing"}, lfsObjectsOnly()...)...)
	return err
}

// sendPack runs git send-pack in work towards ORG/REPO on t, with
// receive as the remote command, over the replication ssh.
func (s *Syncer) sendPack(ctx context.Context, t remote.Target, repo names.RepoPath, work, receive string) error {
	// git appends the path, quoted, to receive.
	url := remote.GitURL(t, repo.String()+".git")
	cmd := exec.CommandContext(ctx, "git", "send-pack", "--mirror", "--force", "--receive-pack="+receive, url)
	cmd.Dir = work
	cmd.Env = append(repos.Env(work), "GIT_DIR="+work, "GIT_SSH_COMMAND="+s.Remote.RsyncShell(t), "GIT_SSH_VARIANT=ssh")
	if err := runGroup(cmd, "send-pack to "+t.Name); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("send-pack to %s: %w", t.Name, ctx.Err())
		}
		return err
	}
	return nil
}
