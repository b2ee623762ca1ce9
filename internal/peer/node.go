package peer

import (
	"context"
	"errors"
	"fmt"

	"cpm/internal/names"
	"cpm/internal/replica"
	"cpm/internal/store"
)

// nodeCopyDir resolves ORG/REPO as this node's copy of a cluster
// repository for another node of the cluster. The shared database says
// where it lives: this node takes a copy only when it is one of the
// repository's replicas (it has a replication job for it), never when
// it is the primary, and only the primary writes it. A node that says
// otherwise is refused: its key makes it a node, not the primary.
func (r *Receiver) nodeCopyDir(ctx context.Context, origin string, rp names.RepoPath, write bool) (names.RepoPath, string, error) {
	p, err := r.nodePlacement(ctx, origin, rp, write)
	if err != nil {
		return rp, "", err
	}
	// A replica is a replication job of the repository to this node
	// (before its first sync too, when its generation is still -1).
	self, err := r.Store.NodeByName(ctx, r.Self)
	if err != nil {
		return rp, "", fmt.Errorf("node %s: %w", r.Self, err)
	}
	if _, err := r.Store.JobFor(ctx, p.RepoID, self.ID); errors.Is(err, store.ErrNotFound) {
		return rp, "", fmt.Errorf("%s: %s holds no replica of it", rp, r.Self)
	} else if err != nil {
		return rp, "", err
	}
	canon := names.RepoPath{Org: p.Org, Repo: p.Name}
	dir, err := r.Disk.Path(canon.Org, canon.Repo)
	return canon, dir, err
}

// nodeWriteDir is nodeCopyDir for a synchronous write: the placement's
// checks only, as the replica's job is checked inside the write
// (store.BeginReplicaWrite), under the repository's row.
func (r *Receiver) nodeWriteDir(ctx context.Context, origin string, rp names.RepoPath) (store.Placement, string, error) {
	p, err := r.nodePlacement(ctx, origin, rp, true)
	if err != nil {
		return p, "", err
	}
	dir, err := r.Disk.Path(p.Org, p.Name)
	return p, dir, err
}

// nodePlacement reads where ORG/REPO lives and refuses what nodeCopyDir
// refuses by it: no cluster, no primary, this node its primary, a writer
// that is not its primary, a neighbour's replica of the same name.
func (r *Receiver) nodePlacement(ctx context.Context, origin string, rp names.RepoPath, write bool) (store.Placement, error) {
	if r.Self == "" {
		return store.Placement{}, fmt.Errorf("%s: this node is in no cluster", rp)
	}
	p, err := r.Store.Placement(ctx, r.Self, rp.Org, rp.Repo)
	if errors.Is(err, store.ErrNotFound) {
		return store.Placement{}, fmt.Errorf("%s: not a repository of this cluster", rp)
	}
	if err != nil {
		return store.Placement{}, err
	}
	switch {
	case !p.Clustered():
		return store.Placement{}, fmt.Errorf("%s: has no primary node", rp)
	case p.PrimaryIs(r.Self):
		return store.Placement{}, fmt.Errorf("%s: %s is its primary and takes no copy of it", rp, r.Self)
	case write && !p.PrimaryIs(origin):
		return store.Placement{}, fmt.Errorf("%s: only its primary %s writes its replicas, not %s", rp, p.Primary.Name, origin)
	}
	// A neighbour's replica of the same name lives in the same folder:
	// the cluster's copy would land in it, under the cluster's
	// permissions. Neither is overwritten; the operator renames one.
	if r.Replicas != nil {
		other, _, err := r.Replicas.Find(ctx, rp.Org, rp.Repo)
		switch {
		case err == nil:
			return store.Placement{}, fmt.Errorf("%s: this node holds neighbour %s's replica of that name; rename one of them", rp, other)
		case !errors.Is(err, replica.ErrNotReplica):
			return store.Placement{}, err
		}
	}
	return p, nil
}
