package transfer

import (
	"strings"
	"testing"
)

// What a lying old primary advertises never becomes a refspec.
func TestPlainRef(t *testing.T) {
	sha := strings.Repeat("a", 40)
	for _, c := range []struct {
		object, ref string
		want        bool
	}{
		{sha, "refs/heads/main", true},
		{strings.Repeat("0", 64), "refs/tags/v1.0", true},
		{sha, "refs/heads/x:refs/heads/main", false},
		{sha, "refs/heads/../../config", false},
		{sha, "refs/heads/a b", false},
		{sha, "refs/heads/*", false},
		{sha, "refs/heads/main^{tree}", false},
		{"xyz", "refs/heads/main", false},
		{strings.Repeat("A", 40), "refs/heads/main", false},
		{sha, "refs/" + strings.Repeat("a", 1100), false},
	} {
		if got := plainRef(c.object, c.ref); got != c.want {
			t.Errorf("plainRef(%.12s, %.40q) = %v", c.object, c.ref, got)
		}
	}
}
