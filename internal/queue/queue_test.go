package queue

import (
	"testing"

	"cpm/internal/names"
)

func TestMarkers(t *testing.T) {
	rp := names.RepoPath{Org: "acme", Repo: "web"}
	got, err := MarkerRepo(MarkerName(rp))
	if err != nil || got != rp {
		t.Errorf("%v %v", got, err)
	}
	for _, bad := range []string{"x", "../+x", "a+b+c", "a+.git"} {
		if _, err := MarkerRepo(bad); err == nil {
			t.Errorf("marker %q accepted", bad)
		}
	}
}
