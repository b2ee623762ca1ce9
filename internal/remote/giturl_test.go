package remote

import "testing"

func TestGitURL(t *testing.T) {
	for _, c := range []struct{ host, want string }{
		{"127.0.0.2", "cpm@127.0.0.2:acme/web.git"},
		{"node-b.example", "cpm@node-b.example:acme/web.git"},
		{"::1", "cpm@[::1]:acme/web.git"},
		{"fd00::2", "cpm@[fd00::2]:acme/web.git"},
	} {
		if got := GitURL(Target{User: "cpm", Host: c.host}, "acme/web.git"); got != c.want {
			t.Errorf("%s: %s, want %s", c.host, got, c.want)
		}
	}
}
