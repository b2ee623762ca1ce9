package hook

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestReadUpdates(t *testing.T) {
	z := strings.Repeat("0", 40)
	a := strings.Repeat("a", 40)
	in := z + " " + a + " refs/heads/new\n" + a + " " + z + " refs/heads/gone\n"
	ups, raw, err := ReadUpdates(strings.NewReader(in))
	if err != nil || len(ups) != 2 || string(raw) != in {
		t.Fatalf("%v %v", ups, err)
	}
	if !ups[0].Create() || ups[0].Delete() || !ups[1].Delete() {
		t.Errorf("create/delete: %+v", ups)
	}
	if got := string(Input(ups)); got != in {
		t.Errorf("Input(ReadUpdates(x)) = %q, want x = %q", got, in)
	}
	for _, bad := range []string{
		"x y z\n",
		a + " " + a + "\n",
		a + " " + a + " HEAD\n",
		a + " " + strings.Repeat("g", 40) + " refs/heads/x\n",
		a + " " + a + " refs/heads/x extra\n",
	} {
		if _, _, err := ReadUpdates(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestPusherFromEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	p, err := PusherFromEnv(env(map[string]string{EnvKeyID: "7", EnvUser: "alice", EnvRemoteAddr: "127.0.0.1:5"}))
	if err != nil || p.Local || p.KeyID != 7 || p.User != "alice" {
		t.Errorf("%+v %v", p, err)
	}
	if p, _ := PusherFromEnv(env(map[string]string{"USER": "root"})); !p.Local || p.User != "local:root" {
		t.Errorf("local push: %+v", p)
	}
	for _, bad := range []string{"x", "-1", "0", "1 2"} {
		if _, err := PusherFromEnv(env(map[string]string{EnvKeyID: bad})); err == nil {
			t.Errorf("key id %q accepted", bad)
		}
		if _, err := PusherFromEnv(env(map[string]string{EnvTokenID: bad})); err == nil {
			t.Errorf("token id %q accepted", bad)
		}
	}
	// A token's push is never taken for a local one.
	p, err = PusherFromEnv(env(map[string]string{EnvTokenID: "3", EnvUser: "alice", EnvKeyID: "0"}))
	if err != nil || p.Local || p.TokenID != 3 || p.KeyID != 0 || p.User != "alice" {
		t.Errorf("token push: %+v %v", p, err)
	}
}

func TestRepoFromDir(t *testing.T) {
	root := t.TempDir()
	got, err := RepoFromDir(root, filepath.Join(root, "acme", "web.git"))
	if err != nil || got.String() != "acme/web" {
		t.Errorf("%v %v", got, err)
	}
	for _, d := range []string{root, filepath.Join(root, "acme"), filepath.Join(root, "..", "x.git"), "/etc/x.git", filepath.Join(root, "a", "b", "c.git")} {
		if _, err := RepoFromDir(root, d); err == nil {
			t.Errorf("%s accepted", d)
		}
	}
}
