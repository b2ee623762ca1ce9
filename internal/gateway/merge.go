package gateway

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"cpm/internal/command"
	"cpm/internal/hook"
	"cpm/internal/merge"
	"cpm/internal/names"
	"cpm/internal/printable"
	"cpm/internal/repos"
)

// merge runs `merge ORG/REPO SOURCE --into TARGET` for a key that may push
// to the repository: the ref update meets the same protected-ref rules and
// the same repository hooks (pre-receive.d, post-receive.d) as a push, is
// audited, and is replicated like one. A conflict changes nothing and
// names the paths.
func (g *Gateway) merge(ctx context.Context, s Session, cmd command.Command, dir string, repo names.RepoPath) error {
	src, dst := strings.TrimPrefix(cmd.Source, "refs/heads/"), strings.TrimPrefix(cmd.Target, "refs/heads/")
	who := merge.Committer{Name: s.Identity.Name(), Email: s.Identity.Name() + "@cpm"}
	p, err := merge.Make(ctx, dir, cmd.Source, cmd.Target, who)
	var ce *merge.ConflictError
	switch {
	case errors.As(err, &ce):
		return refuse("merging %s into %s: %v; nothing changed", src, dst, err)
	case err != nil:
		return refuse("merging %s into %s: %v", src, dst, err)
	case p.Kind == merge.UpToDate:
		fmt.Fprintf(s.Stdout, "%s already contains %s; nothing to do\n", dst, src)
		return nil
	}
	var cert *hook.CertPusher
	if c := s.Identity.Cert; c != nil {
		cert = &hook.CertPusher{Serial: c.Serial, KeyID: c.KeyID}
	}
	update := []hook.Update{{Old: p.Old, New: p.New, Ref: p.Target}}
	if err := hook.Check(ctx, g.Access, s.Identity, cmd.Repo, update, hook.GitAncestry(dir)); err != nil {
		return err
	}
	if err := g.repoHook(ctx, s, dir, repo, "pre-receive", update); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return refuse("merging %s into %s: pre-receive hook declined (%v); nothing changed", src, dst, err)
		}
		return &failure{line: fmt.Sprintf("cpm: merging %s into %s: internal error; nothing changed", src, dst), err: err}
	}
	if err := hook.CheckFence(ctx, g.Store, g.DataDir, repo, s.epochOf); err != nil {
		return refuse("merging %s into %s: %v; nothing changed", src, dst, err)
	}
	if err := merge.Apply(ctx, dir, p, "merge "+src+" by "+s.Identity.Name()); err != nil {
		return &failure{line: fmt.Sprintf("cpm: merging %s into %s: %v", src, dst, err), err: err}
	}
	g.merged(s.lingering(ctx), s, dir, repo, p, cert, update)
	fmt.Fprintf(s.Stdout, "merged %s into %s (%s): %s..%s\n", src, dst, p.Kind, p.Old[:12], p.New[:12])
	return nil
}

// merged does what post-receive does after a push: the audit row, the
// replication queue, the repository's post-receive.d hooks. The merge is
// made, so none of it can fail the session; ctx should outlive the client.
func (g *Gateway) merged(ctx context.Context, s Session, dir string, repo names.RepoPath, p merge.Plan, cert *hook.CertPusher, update []hook.Update) {
	details := map[string]any{
		"source": p.Source, "target": p.Target, "kind": string(p.Kind), "old": p.Old, "new": p.New, "key": s.Identity.Fingerprint,
	}
	if cert != nil {
		details["cert_serial"], details["cert_key_id"] = cert.Serial, cert.KeyID
	}
	err := g.Store.Record(ctx, s.actor(), "merge", repo.String(), details)
	if err != nil {
		// The merge is made; the audit row is owed, not the client's problem.
		g.Log.Error().Err(err).Str("repo", repo.String()).Msg("audit merge")
	}
	// As after a push: on a cluster's primary the merge is acknowledged
	// once sync_replicas replicas hold it, and the client is told.
	hook.Replicate(ctx, g.Store, g.DataDir, repo, s.epochOf, s.Stderr)
	if err := g.repoHook(ctx, s, dir, repo, "post-receive", update); err != nil {
		fmt.Fprintf(s.Stderr, "cpm: %s\n", printable.Line(err.Error()))
	}
}

// repoHook runs the repository's own NAME.d hooks for a ref update made
// without receive-pack, as cpm-hook runs them for a push: in the
// repository, with the environment receive-pack gives its hooks, their
// output to the client's stderr.
func (g *Gateway) repoHook(ctx context.Context, s Session, dir string, repo names.RepoPath, name string, update []hook.Update) error {
	env := append(repos.Env(dir), g.hookEnv(s, repo.String())...)
	env = append(env, "GIT_DIR=.", "GIT_PUSH_OPTION_COUNT=0")
	return hook.RunLocal(ctx, dir, name, env, hook.Input(update), s.Stderr, s.Stderr)
}

// epochOf is the session's environment as cpm-hook would see it, for
// the epoch its write was accepted under (hook.EnvEpoch).
func (s Session) epochOf(key string) string {
	if key != hook.EnvEpoch {
		return ""
	}
	_, v, _ := strings.Cut(s.epoch, "=")
	return v
}
