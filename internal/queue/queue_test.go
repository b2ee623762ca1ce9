package queue

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"cpm/internal/datadir"
	"cpm/internal/names"
	"cpm/internal/store"
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

// Without the database a change leaves a marker; the workers' Drain turns
// it into queue rows once the database answers, and drops markers that
// name nothing.
func TestMarkersUntilTheDatabaseAnswers(t *testing.T) {
	ctx := context.Background()
	dir, err := datadir.New(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	if err := dir.Ensure(); err != nil {
		t.Fatal(err)
	}
	web := names.RepoPath{Org: "acme", Repo: "web"}
	Enqueue(ctx, nil, dir, web) // no database: a marker, and no error
	os.WriteFile(filepath.Join(dir.Dirty(), "not-a-marker"), nil, 0o600)
	os.WriteFile(filepath.Join(dir.Dirty(), MarkerName(names.RepoPath{Org: "acme", Repo: "gone"})), nil, 0o600)
	marker := filepath.Join(dir.Dirty(), MarkerName(web))
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("no marker without the database: %v", err)
	}

	st, err := store.Init(ctx, dir.DB())
	if err != nil {
		t.Fatal(err)
	}
	a := store.Actor{Name: "test"}
	if _, err := st.CreateUser(ctx, a, "owner", false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateOrg(ctx, a, "acme", "owner"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateRepo(ctx, a, store.NewRepo{Org: "acme", Name: "web"}, nil); err != nil {
		t.Fatal(err)
	}
	st.Close()
	Drain(ctx, st, dir.Dirty()) // closed: the database does not answer
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("marker dropped while the database was unavailable: %v", err)
	}

	if st, err = store.Open(ctx, dir.DB()); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	Drain(ctx, st, dir.Dirty())
	left, _ := os.ReadDir(dir.Dirty())
	for _, e := range left {
		t.Errorf("marker %s left after the database answered", e.Name())
	}
}
