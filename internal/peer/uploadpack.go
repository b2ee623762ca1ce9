package peer

import (
	"context"
	"errors"
	"os/exec"

	"cpm/internal/gitservice"
	"cpm/internal/names"
)

// UploadPack serves this node's own copy of ORG/REPO, cpm's refs
// included, to the repository's primary and to no one else: before the
// primary's copy replaces a returning old primary's, it fetches what the
// old primary wrote that it lacks (diverged writes). A node's key only;
// the primary only, as for writing the copy (nodeCopyDir).
func (r *Receiver) UploadPack(ctx context.Context, origin Origin, rp names.RepoPath) (*exec.Cmd, error) {
	if !origin.Node {
		return nil, errors.New("cpm-peer upload-pack is for nodes of this cluster")
	}
	_, dir, err := r.nodeCopyDir(ctx, origin.Name, rp, true)
	if err != nil {
		return nil, err
	}
	return gitservice.Command(ctx, gitservice.Request{Service: gitservice.UploadPack, Dir: dir, Replication: true}), nil
}
