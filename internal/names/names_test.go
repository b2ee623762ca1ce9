package names

import (
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"alice", true},
		{"Alice_1", true},
		{"a.b-c_d", true},
		{"a", true},
		{"0day", true},
		{strings.Repeat("a", MaxLen), true},
		{strings.Repeat("a", MaxLen+1), false},
		{"", false},
		{".hidden", false},
		{"-rf", false},
		{"--upload-pack=touch", false},
		{"a..b", false},
		{"..", false},
		{".", false},
		{"a/b", false},
		{`a\b`, false},
		{"a b", false},
		{"a\nb", false},
		{"a\x00b", false},
		{"a\x1b[31m", false},
		{"émile", false},
		{"trailing.", false},
		{"x.git", false},
		{"x.GIT", false},
		{"ref.lock", false},
		{"$(id)", false},
		{"`id`", false},
		{"a;b", false},
		{"~root", false},
		{"a:b", false},
		{"deploy-key-3", false},
		{"Deploy-Token-12", false},
		{"deploy-keyes", true},
	}
	for _, tt := range tests {
		err := Check(User, tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("Check(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalid) {
			t.Errorf("Check(%q) error %v does not wrap ErrInvalid", tt.name, err)
		}
	}
}

func TestRepoName(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"hello", "hello", true},
		{"hello.git", "hello", true},
		{"hello.git.git", "", false},
		{".git", "", false},
		{"a..git", "", false},
		{"x.lock.git", "", false},
	}
	for _, tt := range tests {
		got, err := RepoName(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("RepoName(%q) = %q, %v; want %q ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseRepoPath(t *testing.T) {
	tests := []struct {
		in   string
		want RepoPath
		ok   bool
	}{
		{"acme/web", RepoPath{"acme", "web"}, true},
		{"acme/web.git", RepoPath{"acme", "web"}, true},
		{"acme", RepoPath{}, false},
		{"/acme/web", RepoPath{}, false},
		{"acme/web/", RepoPath{}, false},
		{"acme//web", RepoPath{}, false},
		{"acme/../web", RepoPath{}, false},
		{"../etc/passwd", RepoPath{}, false},
		{"acme/.git", RepoPath{}, false},
		{"acme/-web", RepoPath{}, false},
		{"acme.git/web", RepoPath{}, false},
	}
	for _, tt := range tests {
		got, err := ParseRepoPath(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseRepoPath(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestInvalidMessageQuotesControlCharacters(t *testing.T) {
	err := Check(Org, "evil\x1b]0;pwned\x07")
	if err == nil || strings.ContainsAny(err.Error(), "\x1b\x07") {
		t.Fatalf("error must quote control characters, got %q", err)
	}
}
