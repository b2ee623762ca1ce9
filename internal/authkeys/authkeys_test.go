package authkeys

import (
	"strings"
	"testing"
)

func TestLine(t *testing.T) {
	got, err := Line("/usr/bin/cpm-shell", "/srv/cpm", 7, "ssh-ed25519 AAAAC3")
	want := `command="'/usr/bin/cpm-shell' key-7 --data-dir '/srv/cpm'",restrict ssh-ed25519 AAAAC3`
	if err != nil || got != want {
		t.Errorf("Line = %q, %v\nwant %q", got, err, want)
	}
	for _, bad := range [][2]string{{"/a'b", "/d"}, {"/a", "/d\"x"}, {"/a\n", "/d"}} {
		if _, err := Line(bad[0], bad[1], 1, "ssh-ed25519 AAAA"); err == nil {
			t.Errorf("Line(%q, %q) accepted", bad[0], bad[1])
		}
	}
	if _, err := Line("/a", "/d", 1, "ssh-ed25519 AAAA\ncommand=x"); err == nil {
		t.Error("multi-line key accepted")
	}
}

func TestPeerLine(t *testing.T) {
	fp := "SHA256:" + strings.Repeat("aB3+/", 8) + "xyz"
	got, err := PeerLine("/usr/bin/cpm-shell", "/srv/cpm", fp, "ssh-ed25519 AAAAC3")
	want := `command="'/usr/bin/cpm-shell' peer-` + fp + ` --data-dir '/srv/cpm'",restrict ssh-ed25519 AAAAC3`
	if err != nil || got != want {
		t.Errorf("PeerLine = %q, %v\nwant %q", got, err, want)
	}
	for _, bad := range []string{"", "MD5:aa", "SHA256:x;rm -rf /", "SHA256:" + strings.Repeat("a", 42) + "'", fp + " x"} {
		if _, err := PeerLine("/a", "/d", bad, "ssh-ed25519 AAAA"); err == nil {
			t.Errorf("PeerLine with fingerprint %q accepted", bad)
		}
	}
}
