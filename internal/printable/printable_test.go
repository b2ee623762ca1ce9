package printable

import "testing"

func TestLine(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"one line", "one line"},
		{"  ssh: connect\n  refused\r\n", "ssh: connect refused"},
		{"tab\tand\vform\ffeed", "tab and form feed"},
		{"bell\a and \x1b[31mred\x1b[0m", "bell and [31mred[0m"},
		{"del\x7f", "del"},
		{"ünïcode stays", "ünïcode stays"},
	} {
		if got := Line(tt.in); got != tt.want {
			t.Errorf("Line(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCut(t *testing.T) {
	for _, tt := range []struct {
		in   string
		max  int
		want string
	}{
		{"git-upload-pack", 64, "git-upload-pack"},
		{"a\nb\x00c", 64, "a?b?c"},
		{"abcdef", 3, "abc…"},
	} {
		if got := Cut(tt.in, tt.max); got != tt.want {
			t.Errorf("Cut(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
		}
	}
}
