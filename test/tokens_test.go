package test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"cpm/internal/testworld"
)

var tokenLine = regexp.MustCompile(`^cpm_[0-9A-Za-z]{32}$`)

// createToken runs a command that makes a token and returns the secret,
// checking that it is alone on the last line of stdout and printed once.
func createToken(t *testing.T, w *testworld.World, args ...string) string {
	t.Helper()
	out := w.MustAdmin(args...)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	secret := lines[len(lines)-1]
	if !tokenLine.MatchString(secret) || strings.Count(out, secret) != 1 {
		t.Fatalf("%v: stdout %q, want the token alone on the last line, once", args, out)
	}
	return secret
}

// TestTokenAdmin drives token create, list, revoke and repo deploy-token
// create as an operator would: output, JSON keys, audit rows, refusals of
// bad input, and what deleting a user or repository does to tokens. The
// secrets are in no file of the data directory and in no output but the
// one line.
func TestTokenAdmin(t *testing.T) {
	w := testworld.New(t, bin)
	w.MustAdmin("user", "add", "alice")
	w.MustAdmin("user", "add", "bob")
	w.MustAdmin("org", "create", "acme")
	for _, r := range []string{"acme/web", "acme/api", "acme/tmp"} {
		w.MustAdmin("repo", "create", r)
	}

	laptop := createToken(t, w, "token", "create", "alice", "--name", "laptop")
	ci := createToken(t, w, "token", "create", "alice", "--name", "ci", "--repo", "acme/web", "--repo", "ACME/api", "--read-only", "--expires", "12h")
	tmp := createToken(t, w, "token", "create", "bob", "--name", "tmp", "--repo", "acme/tmp", "--expires", "never")
	argo := createToken(t, w, "repo", "deploy-token", "create", "acme/web", "--name", "argo")
	deployer := createToken(t, w, "repo", "deploy-token", "create", "acme/api", "--name", "deployer", "--write")
	secrets := []string{laptop, ci, tmp, argo, deployer}
	if len(slices.Compact(slices.Sorted(slices.Values(secrets)))) != len(secrets) {
		t.Fatal("a secret given twice")
	}

	list := jsonList(t, w, "token", "list")
	if len(list) != 5 {
		t.Fatalf("token list: %v", list)
	}
	for _, tk := range list {
		keys := make([]string, 0, len(tk))
		for k := range tk {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if strings.Join(keys, ",") != "created,expires,id,last_used,name,scope,user" {
			t.Errorf("token list --json keys %v", keys)
		}
	}
	want := []struct{ user, name, scope string }{
		{"alice", "laptop", "all"},
		{"alice", "ci", "acme/api acme/web, read-only"},
		{"bob", "tmp", "acme/tmp"},
		{"", "argo", "acme/web, deploy, read-only"},
		{"", "deployer", "acme/api, deploy, write"},
	}
	for i, wt := range want {
		tk := list[i]
		if tk["user"] != wt.user || tk["name"] != wt.name || tk["scope"] != wt.scope || tk["last_used"] != nil {
			t.Errorf("token %d: %v, want %+v", i, tk, wt)
		}
	}
	// The default lifetime is 90 days; never means none; deploy tokens
	// do not expire.
	if list[0]["expires"] == nil || list[2]["expires"] != nil || list[3]["expires"] != nil {
		t.Errorf("expiries: %v %v %v", list[0]["expires"], list[2]["expires"], list[3]["expires"])
	}
	if mine := jsonList(t, w, "token", "list", "alice"); len(mine) != 2 {
		t.Errorf("token list alice: %v", mine)
	}
	if table := w.MustAdmin("token", "list"); !strings.Contains(table, "LAST USED") || !strings.Contains(table, "deploy, write") {
		t.Errorf("token list:\n%s", table)
	}

	// Revoke: gone from the list, audited.
	w.MustAdmin("token", "revoke", idOf(t, list, "laptop"))
	if after := jsonList(t, w, "token", "list", "alice"); len(after) != 1 || after[0]["name"] != "ci" {
		t.Errorf("after revoke: %v", after)
	}
	wantError(t, w.Admin("", "token", "revoke", idOf(t, list, "laptop")), "not found")
	audit := w.MustAdmin("audit", "--limit", "20")
	for _, a := range []string{"token.create", "deploy-token.create", "token.revoke"} {
		if !strings.Contains(audit, a) {
			t.Errorf("audit has no %s:\n%s", a, audit)
		}
	}

	// Deleting a repository or a user takes its tokens along: bob's only
	// repository goes, then bob; the deploy token of acme/web goes with it.
	w.MustAdmin("repo", "delete", "acme/tmp")
	if bobs := jsonList(t, w, "token", "list", "bob"); len(bobs) != 1 || !strings.HasPrefix(bobs[0]["scope"].(string), "none") {
		t.Errorf("bob's token after its repository went: %v", bobs)
	}
	w.MustAdmin("user", "remove", "bob")
	w.MustAdmin("repo", "delete", "acme/web")
	left := jsonList(t, w, "token", "list")
	if len(left) != 2 || left[0]["name"] != "ci" || left[0]["scope"] != "acme/api, read-only" || left[1]["name"] != "deployer" {
		t.Errorf("after deletes: %v", left)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"token", "create", "nobody", "--name", "x"}, `user "nobody" not found`},
		{[]string{"token", "create", "alice", "--name", "x", "--expires", "0"}, "invalid --expires"},
		{[]string{"token", "create", "alice", "--name", "x", "--expires=-1d"}, "invalid --expires"},
		{[]string{"token", "create", "alice", "--name", "x", "--expires", "-5m"}, "expires"},
		{[]string{"token", "create", "alice", "--name", "x", "--expires", "soon"}, "invalid --expires"},
		{[]string{"token", "create", "alice", "--name", "x", "--repo", "acme/nope"}, `repository "acme/nope" not found`},
		{[]string{"token", "create", "alice", "--name", "x", "--repo", "../etc"}, "invalid"},
		{[]string{"token", "create", "alice", "--name", "two\nlines"}, "invalid token name"},
		{[]string{"token", "create", "alice"}, "--name"},
		{[]string{"token", "revoke", "x1"}, "invalid token id"},
		{[]string{"token", "revoke", "424242"}, "not found"},
		{[]string{"token", "list", "nobody"}, `user "nobody" not found`},
		{[]string{"repo", "deploy-token", "create", "acme/nope", "--name", "x"}, `repository "acme/nope" not found`},
	} {
		wantError(t, w.Admin("", c.args...), c.want)
	}
	if n := len(jsonList(t, w, "token", "list")); n != 2 {
		t.Errorf("a refused command left %d tokens, want 2", n)
	}

	// No secret in any file of the data directory, the audit, or config show.
	shown := w.MustAdmin("audit") + w.MustAdmin("config", "show") + w.MustAdmin("token", "list")
	filepath.Walk(w.DataDir, func(path string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		b, _ := os.ReadFile(path)
		for _, s := range secrets {
			if strings.Contains(string(b), s) {
				t.Errorf("%s holds a token's secret", path)
			}
		}
		return nil
	})
	for _, s := range secrets {
		if strings.Contains(shown, s) {
			t.Errorf("a secret shown again")
		}
	}
}

func idOf(t *testing.T, list []map[string]any, name string) string {
	t.Helper()
	for _, tk := range list {
		if tk["name"] == name {
			return strconv.FormatInt(int64(tk["id"].(float64)), 10)
		}
	}
	t.Fatalf("no token %q in %v", name, list)
	return ""
}
