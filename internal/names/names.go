// Package names validates the names of users, organisations and
// repositories before anything reaches the database or the disk.
//
// Names become directory names (repos/ORG/REPO.git) and appear in URLs,
// logs and terminal output, so the accepted alphabet is small on purpose:
// ASCII letters, digits, '.', '_' and '-', never starting with '.' or '-',
// never containing "..", and bounded in length.
package names

import (
	"errors"
	"fmt"
	"strings"
)

// MaxLen bounds every name; it keeps paths short and output readable.
const MaxLen = 64

// ErrInvalid is wrapped by every validation error so callers can test for it.
var ErrInvalid = errors.New("invalid name")

// Kind says what a name is for; it appears in error messages.
type Kind string

const (
	User Kind = "user"
	Org  Kind = "organisation"
	Repo Kind = "repository"
)

// Check reports whether s is an acceptable name of the given kind.
// Repository names must already have their ".git" suffix folded away
// (see RepoName).
func Check(kind Kind, s string) error {
	if why := fault(s); why != "" {
		return invalid(kind, s, why)
	}
	if kind == User && reservedUser(s) {
		return invalid(kind, s, `"deploy-key-…" and "deploy-token-…" name deploy keys and tokens`)
	}
	return nil
}

// reservedUser reports whether s spells what deploy keys and deploy
// tokens are called in logs and as lock owners (access.Identity.Name):
// a user of that name would own a deploy key's LFS locks.
func reservedUser(s string) bool {
	l := strings.ToLower(s)
	return strings.HasPrefix(l, "deploy-key-") || strings.HasPrefix(l, "deploy-token-")
}

// RepoName folds one ".git" suffix away and validates the rest.
func RepoName(s string) (string, error) {
	folded := strings.TrimSuffix(s, ".git")
	if why := fault(folded); why != "" {
		return "", invalid(Repo, s, why)
	}
	return folded, nil
}

// fault says what is wrong with s, or "" when nothing is.
func fault(s string) string {
	if s == "" {
		return "empty"
	}
	if len(s) > MaxLen {
		return fmt.Sprintf("longer than %d characters", MaxLen)
	}
	for i := 0; i < len(s); i++ {
		if !allowed(s[i]) {
			return "only letters, digits, '.', '_' and '-' are allowed"
		}
	}
	lower := strings.ToLower(s)
	switch {
	case s[0] == '.' || s[0] == '-':
		return "must not start with '.' or '-'"
	case strings.Contains(s, ".."):
		return `must not contain ".."`
	case strings.HasSuffix(s, "."):
		return "must not end with '.'"
	case strings.HasSuffix(lower, ".git"):
		// For repositories the suffix has been folded already; a second one
		// ("x.git.git") or one on a user or org name confuses more than it helps.
		return `must not end with ".git"`
	case strings.HasSuffix(lower, ".lock"):
		// git uses NAME.lock for its own lock files.
		return `must not end with ".lock"`
	}
	return ""
}

// RepoPath is a validated ORG/REPO pair.
type RepoPath struct {
	Org  string
	Repo string
}

// String returns "ORG/REPO".
func (p RepoPath) String() string { return p.Org + "/" + p.Repo }

// ParseRepoPath parses "ORG/REPO" or "ORG/REPO.git". It accepts nothing
// else: no leading or trailing slash, no more than one separator.
func ParseRepoPath(s string) (RepoPath, error) {
	org, repo, ok := strings.Cut(s, "/")
	if !ok || strings.Contains(repo, "/") {
		return RepoPath{}, invalid(Repo, s, "want ORG/REPO")
	}
	if err := Check(Org, org); err != nil {
		return RepoPath{}, err
	}
	name, err := RepoName(repo)
	if err != nil {
		return RepoPath{}, err
	}
	return RepoPath{Org: org, Repo: name}, nil
}

func allowed(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == '-'
}

func invalid(kind Kind, s, why string) error {
	// %q keeps control characters and escape sequences out of terminals and logs.
	if len(s) > 2*MaxLen {
		s = s[:2*MaxLen] + "…"
	}
	return fmt.Errorf("%w %s %q: %s", ErrInvalid, kind, s, why)
}
