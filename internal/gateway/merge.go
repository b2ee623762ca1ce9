package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"cpm/internal/command"
	"cpm/internal/hook"
	"cpm/internal/merge"
	"cpm/internal/store"
)

// merge runs `merge ORG/REPO SOURCE --into TARGET` for a key that may push
// to the repository: the ref update meets the same protected-ref rules as
// a push, is audited, and is replicated like one. A conflict changes
// nothing and names the paths.
func (g *Gateway) merge(ctx context.Context, s Session, cmd command.Command, dir, repo string) (string, int) {
	src, dst := strings.TrimPrefix(cmd.Source, "refs/heads/"), strings.TrimPrefix(cmd.Target, "refs/heads/")
	who := merge.Committer{Name: s.Identity.Name(), Email: s.Identity.Name() + "@cpm"}
	p, err := merge.Make(ctx, dir, cmd.Source, cmd.Target, who)
	var ce *merge.ConflictError
	switch {
	case errors.As(err, &ce):
		fmt.Fprintf(s.Stderr, "cpm: merging %s into %s: %v; nothing changed\n", src, dst, err)
		return "deny", 1
	case err != nil:
		fmt.Fprintf(s.Stderr, "cpm: merging %s into %s: %v\n", src, dst, err)
		return "deny", 1
	case p.Kind == merge.UpToDate:
		fmt.Fprintf(s.Stdout, "%s already contains %s; nothing to do\n", dst, src)
		return "allow", 0
	}
	pusher := hook.Pusher{KeyID: s.Identity.KeyID, User: s.Identity.Name(), Fingerprint: s.Identity.Fingerprint, RemoteAddr: s.RemoteAddr}
	update := []hook.Update{{Old: p.Old, New: p.New, Ref: p.Target}}
	if err := hook.Check(ctx, g.Access, pusher, cmd.Repo, update, hook.GitAncestry(dir)); err != nil {
		fmt.Fprintf(s.Stderr, "cpm: %v\n", err)
		return "deny", 1
	}
	if err := merge.Apply(ctx, dir, p, "merge "+src+" by "+s.Identity.Name()); err != nil {
		fmt.Fprintf(s.Stderr, "cpm: merging %s into %s: %v\n", src, dst, err)
		return "error", 1
	}
	st := g.Access.Store
	err = st.Record(ctx, store.Actor{Name: s.Identity.Name(), RemoteAddr: s.RemoteAddr}, "merge", repo, map[string]any{
		"source": p.Source, "target": p.Target, "kind": string(p.Kind), "old": p.Old, "new": p.New, "key": s.Identity.Fingerprint,
	})
	if err != nil {
		g.Log.Error().Err(err).Str("repo", repo).Msg("audit merge")
	}
	hook.Enqueue(ctx, st, g.DataDir, cmd.Repo)
	fmt.Fprintf(s.Stdout, "merged %s into %s (%s): %s..%s\n", src, dst, p.Kind, p.Old[:12], p.New[:12])
	return "allow", 0
}
