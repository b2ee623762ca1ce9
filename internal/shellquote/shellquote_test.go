package shellquote

import (
	"os/exec"
	"testing"
)

// Each quoted word reaches a real shell as exactly the word.
func TestQuoteRoundTrip(t *testing.T) {
	for _, w := range []string{"plain", "/var/lib/cpm", "with space", "it's", `a"b`, "$(reboot)", "`x`", "a;b", "new\nline", ""} {
		for _, q := range []func(string) string{Quote, Always} {
			out, err := exec.Command("sh", "-c", "printf %s "+q(w)).Output()
			if err != nil || string(out) != w {
				t.Errorf("sh got %q for %q (%s), want the word: %v", out, w, q(w), err)
			}
		}
	}
	if Quote("/srv/backup") != "/srv/backup" || Always("/srv/backup") != "'/srv/backup'" {
		t.Error("safe words: Quote leaves them, Always quotes them")
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{"/a/b": "/a/b", "a b": "'a b'", "it's": `'it'\''s'`, "": "''"} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %q, want %q", in, got, want)
		}
	}
}
