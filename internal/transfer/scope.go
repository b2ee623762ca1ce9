package transfer

import (
	"fmt"
	"path"
	"strings"

	"cpm/internal/authz"
	"cpm/internal/names"
	"cpm/internal/store"
)

// SplitPatterns splits a comma-separated pattern list; "" is none.
func SplitPatterns(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// InScope reports whether ORG/REPO is one of the repositories a server
// with these repository patterns (path.Match, comma-separated; "" is
// every repository) replicates.
func InScope(patterns, repo string) bool {
	ps := SplitPatterns(patterns)
	if len(ps) == 0 {
		return true
	}
	for _, p := range ps {
		if ok, _ := path.Match(p, repo); ok {
			return true
		}
	}
	return false
}

// ScopeError is a repository outside a server's --repos scope.
type ScopeError struct {
	Repo, Server, Patterns string
}

func (e *ScopeError) Error() string {
	return fmt.Sprintf("%s is outside the scope of %s (--repos %s)", e.Repo, e.Server, e.Patterns)
}

// Refusal marks it as a decision, not a fault, for logs and metrics.
func (e *ScopeError) Refusal() bool { return true }

// CheckScope is the scope check of every path that sends ORG/REPO to a
// server (the workers, sync push, a neighbour's want, a forwarded push
// and its final sync): nil when the server's --repos take it, a
// *ScopeError when not. A node of the cluster has no scope: a
// repository's replica set (its replication jobs) says what it holds.
func CheckScope(srv store.Server, repo string) error {
	if srv.Role == store.Node || InScope(srv.RepoPatterns, repo) {
		return nil
	}
	return &ScopeError{Repo: repo, Server: srv.Name, Patterns: srv.RepoPatterns}
}

// CheckRepoPatterns validates a --repos value: ORG/REPO patterns such as
// acme/* or tools/cli.
func CheckRepoPatterns(s string) error {
	for _, p := range SplitPatterns(s) {
		org, repo, ok := strings.Cut(p, "/")
		if _, err := path.Match(p, ""); err != nil || !ok || strings.Contains(repo, "/") {
			return fmt.Errorf("repository pattern %q: want ORG/REPO with * ? [ ] wildcards, such as acme/*", p)
		}
		for _, part := range []string{org, repo} {
			if strings.ContainsAny(part, "*?[") {
				continue
			}
			if err := names.Check(names.Repo, part); err != nil {
				return fmt.Errorf("repository pattern %q: %w", p, err)
			}
		}
	}
	return nil
}

// CheckRefPatterns validates a --refs value: patterns such as
// refs/heads/main or refs/tags/*.
func CheckRefPatterns(s string) error {
	for _, p := range SplitPatterns(s) {
		if err := authz.CheckPattern(p); err != nil {
			return err
		}
	}
	return nil
}
