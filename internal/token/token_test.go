package token

import "testing"

func TestNewIsWellFormedAndUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		s, h, err := New()
		if err != nil {
			t.Fatal(err)
		}
		if !WellFormed(s) || h != Hash(s) || len(h) != 64 {
			t.Fatalf("secret %q hash %q", s, h)
		}
		if seen[s] {
			t.Fatalf("secret %q made twice", s)
		}
		seen[s] = true
	}
}

func TestWellFormed(t *testing.T) {
	good, _, _ := New()
	for _, c := range []struct {
		s    string
		want bool
	}{
		{good, true},
		{"", false},
		{"cpm_", false},
		{good[:len(good)-1], false},
		{good + "x", false},
		{"CPM_" + good[4:], false},
		{"cpm_" + "0123456789abcdef0123456789abcde/", false},
		{"cpm_" + "0123456789abcdef0123456789abcde\x00", false},
		{"ghp_" + good[4:], false},
	} {
		if got := WellFormed(c.s); got != c.want {
			t.Errorf("WellFormed(%q) = %v, want %v", c.s, got, c.want)
		}
	}
}
