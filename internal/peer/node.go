package peer

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"cpm/internal/names"
	"cpm/internal/store"
)

// nodeCopyDir resolves ORG/REPO as this node's copy of a cluster
// repository for another node of the cluster. The shared database says
// where it lives: this node takes a copy only when it is one of the
// repository's replicas (it has a replication job for it), never when
// it is the primary, and only the primary writes it. A node that says
// otherwise is refused: its key makes it a node, not the primary.
func (r *Receiver) nodeCopyDir(ctx context.Context, origin string, rp names.RepoPath, write bool) (names.RepoPath, string, error) {
	if r.Self == "" {
		return rp, "", fmt.Errorf("%s: this node is in no cluster", rp)
	}
	p, err := r.Store.Placement(ctx, r.Self, rp.Org, rp.Repo)
	if errors.Is(err, store.ErrNotFound) {
		return rp, "", fmt.Errorf("%s: not a repository of this cluster", rp)
	}
	if err != nil {
		return rp, "", err
	}
	switch {
	case !p.Clustered():
		return rp, "", fmt.Errorf("%s: has no primary node", rp)
	case strings.EqualFold(p.Primary.Name, r.Self):
		return rp, "", fmt.Errorf("%s: %s is its primary and takes no copy of it", rp, r.Self)
	case write && !strings.EqualFold(p.Primary.Name, origin):
		return rp, "", fmt.Errorf("%s: only its primary %s writes its replicas, not %s", rp, p.Primary.Name, origin)
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
	repo, err := r.Store.Repo(ctx, rp.Org, rp.Repo)
	if err != nil {
		return rp, "", err
	}
	canon := names.RepoPath{Org: repo.Org, Repo: repo.Name}
	dir, err := r.Disk.Path(canon.Org, canon.Repo)
	return canon, dir, err
}
