package authz

import (
	"fmt"
	"path"
	"strings"
)

// DefaultProtected are the patterns every new repository starts with.
var DefaultProtected = []string{"refs/heads/main", "refs/heads/master"}

// CheckPattern validates a protected-ref pattern: a full ref name under
// refs/, where '*' matches within one path segment (path.Match rules).
func CheckPattern(p string) error {
	bad := func(why string) error { return fmt.Errorf("invalid ref pattern %q: %s", p, why) }
	switch {
	case !strings.HasPrefix(p, "refs/") || len(p) == len("refs/"):
		return bad("must start with refs/")
	case len(p) > 255:
		return bad("too long")
	case strings.Contains(p, "..") || strings.Contains(p, "//") || strings.HasSuffix(p, "/"):
		return bad(`must not contain ".." or empty segments`)
	}
	for _, c := range p {
		if c <= ' ' || c == 0x7f || c == '~' || c == '^' || c == ':' || c == '\\' {
			return bad("contains a character git refuses in ref names")
		}
	}
	if _, err := path.Match(p, "refs/x"); err != nil {
		return bad("malformed pattern")
	}
	return nil
}

// Protected reports whether ref matches any of the patterns.
func Protected(patterns []string, ref string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, ref); ok {
			return true
		}
	}
	return false
}
