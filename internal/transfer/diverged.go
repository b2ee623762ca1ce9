package transfer

import (
	"context"
	"fmt"
	"strings"

	"cpm/internal/names"
	"cpm/internal/printable"
	"cpm/internal/remote"
	"cpm/internal/repos"
	"cpm/internal/store"
)

// DivergedPrefix is where a primary keeps what a returning old primary
// wrote that it lacks: refs/cpm/diverged/EPOCH/<the ref's own name>.
// Users never see refs/cpm/ (gitservice hides it).
const DivergedPrefix = "refs/cpm/diverged/"

// SaveDiverged runs on a repository's primary before its first sync to
// t, the old primary that epoch replaced: it lists t's refs (cpm-peer
// upload-pack, t's own copy) and fetches each ref whose object this copy
// lacks, or that is not contained in this copy's ref of the same name,
// to DivergedPrefix+EPOCH/ref, so the sync that follows loses nothing.
// A ref already contained here is not saved. It returns what it saved.
func (s *Syncer) SaveDiverged(ctx context.Context, repo names.RepoPath, t remote.Target, epoch int64) ([]store.DivergedRef, error) {
	dir, unlock, err := s.openLocked(ctx, repo)
	if err != nil {
		return nil, err
	}
	defer unlock()
	env := []string{"GIT_SSH_COMMAND=" + s.Remote.RsyncShell(t)}
	url := remote.GitURL(t, repo.String()+".git")
	out, err := repos.GitOutput(ctx, dir, env, "ls-remote", "--upload-pack=cpm-peer upload-pack", url)
	if err != nil {
		return nil, fmt.Errorf("refs of %s on %s: %w", repo, t.Name, err)
	}
	var saved []store.DivergedRef
	var specs []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		object, ref, ok := strings.Cut(line, "\t")
		if !ok || !strings.HasPrefix(ref, "refs/") || strings.HasPrefix(ref, "refs/cpm/") {
			continue // HEAD follows a branch; cpm's own refs are no user's writes
		}
		if !plainRef(object, ref) {
			return nil, fmt.Errorf("refs of %s on %s: %q is no ref line git would send", repo, t.Name, printable.Line(line))
		}
		if contained(ctx, dir, object, ref) {
			continue
		}
		d := store.DivergedRef{Epoch: epoch, Ref: ref, Object: object, Node: t.Name}
		saved = append(saved, d)
		specs = append(specs, "+"+ref+":"+d.SavedAs())
	}
	if len(specs) == 0 {
		return nil, nil
	}
	args := append([]string{"-c", "fetch.fsckObjects=true", "fetch", "--no-tags", "--no-write-fetch-head", "--upload-pack=cpm-peer upload-pack", url}, specs...)
	if _, err := repos.GitOutput(ctx, dir, env, args...); err != nil {
		return nil, fmt.Errorf("keep the diverged refs of %s from %s: %w", repo, t.Name, err)
	}
	return saved, nil
}

// plainRef reports whether an advertised ref is one this node may name
// in a refspec: a hexadecimal object name and a ref name without what
// refspecs and revisions give meaning to (git checks the rest when it
// writes the ref).
func plainRef(object, ref string) bool {
	if (len(object) != 40 && len(object) != 64) || strings.Trim(object, "0123456789abcdef") != "" {
		return false
	}
	return len(ref) <= 1024 && !strings.Contains(ref, "..") && !strings.ContainsAny(ref, ":^~?*[\\ \t\x00\x7f")
}

// contained reports whether object is here and is ref's object here or
// an ancestor of it.
func contained(ctx context.Context, dir, object, ref string) bool {
	if _, err := repos.GitOutput(ctx, dir, nil, "cat-file", "-e", object+"^{object}"); err != nil {
		return false
	}
	if isAncestor(ctx, dir, object, ref) {
		return true
	}
	here, err := repos.GitOutput(ctx, dir, nil, "rev-parse", "--verify", "-q", ref)
	return err == nil && strings.TrimSpace(string(here)) == object // a tag or tree: the same object
}
