package transfer

import (
	"strings"
	"testing"

	"cpm/internal/remote"
)

func TestCopyStrategies(t *testing.T) {
	s := &Syncer{}
	s.markNoRsync("bare")
	tests := []struct {
		name   string
		target remote.Target
		fresh  bool
		want   string // the copier's type
		steps  []string
	}{
		{"backup, first copy", remote.Target{Name: "b1"}, true, "rsync", []string{"skeleton", "data", "indexes", "refs"}},
		{"backup, later copy", remote.Target{Name: "b1"}, false, "rsync", []string{"data", "indexes", "refs"}},
		{"neighbour, first copy", remote.Target{Name: "n1", Peer: true}, true, "rsync", []string{"data", "indexes", "refs"}},
		{"backup without rsync", remote.Target{Name: "bare"}, true, "tar", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := s.copierFor(tt.target)
			got := "rsync"
			if _, ok := c.(tarCopier); ok {
				got = "tar"
			}
			if got != tt.want {
				t.Fatalf("copier %s, want %s", got, tt.want)
			}
			if got != "rsync" {
				return
			}
			var kinds []string
			for _, st := range rsyncSteps(copyJob{target: tt.target, dir: "/r", refsDir: "/refs", skelDir: "/skel", fresh: tt.fresh}) {
				args := strings.Join(st.args, " ")
				switch {
				case st.src == "/skel/":
					kinds = append(kinds, "skeleton")
				case st.src == "/refs/":
					kinds = append(kinds, "refs")
				case strings.Contains(args, "--exclude=*.idx"):
					kinds = append(kinds, "data") // indexes held back
				default:
					kinds = append(kinds, "indexes")
				}
			}
			if strings.Join(kinds, ",") != strings.Join(tt.steps, ",") {
				t.Errorf("steps %v, want %v", kinds, tt.steps)
			}
		})
	}
}
