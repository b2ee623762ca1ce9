package capbuf

import "testing"

func TestBuffer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		quiet  bool
		writes []string
		want   string
		over   bool
		fail   bool
	}{
		{"under", false, []string{"ab", "cd"}, "abcd", false, false},
		{"exactly", false, []string{"abcde"}, "abcde", false, false},
		{"over fails", false, []string{"abc", "def"}, "abc", true, true},
		{"quiet keeps the start", true, []string{"abc", "def", "g"}, "abcde", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Buffer{Max: 5, Quiet: tc.quiet}
			failed := false
			for _, w := range tc.writes {
				if _, err := c.Write([]byte(w)); err != nil {
					failed = true
					break
				}
			}
			if c.String() != tc.want || c.Over() != tc.over || failed != tc.fail {
				t.Errorf("got %q over=%v failed=%v, want %q over=%v failed=%v", c.String(), c.Over(), failed, tc.want, tc.over, tc.fail)
			}
		})
	}
}
