package authkeys

import "testing"

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
