package admin

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"cpm/internal/datadir"
	"cpm/internal/provision"
	"cpm/internal/store"
)

func service(t *testing.T) *Service {
	t.Helper()
	ctx := context.Background()
	dir, _ := datadir.New(t.TempDir())
	st, _, err := Init(ctx, dir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	s, err := Open(ctx, dir, "", store.Actor{Name: "local:test"}, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// A directory already on disk (unknown to the database) is never adopted
// or overwritten, and the database does not record the repository.
func TestCreateRepoRefusesExistingDirectory(t *testing.T) {
	ctx := context.Background()
	s := service(t)
	if _, err := s.CreateOrg(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(s.Disk.Dir, "acme", "web.git")
	os.MkdirAll(stray, 0o755)
	os.WriteFile(filepath.Join(stray, "precious"), []byte("x"), 0o644)
	if _, _, err := s.CreateRepo(ctx, "acme/web", false, ""); err == nil {
		t.Fatal("created over an existing directory")
	}
	if _, err := s.Store.Repo(ctx, "acme", "web"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("recorded anyway: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(stray, "precious")); err != nil || string(b) != "x" {
		t.Errorf("stray directory damaged: %v", err)
	}
}

// If the database change fails after the repository moved to the trash,
// the repository comes back.
func TestDeleteRepoRestoresOnFailure(t *testing.T) {
	ctx := context.Background()
	s := service(t)
	if _, err := s.CreateOrg(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateRepo(ctx, "acme/web", false, ""); err != nil {
		t.Fatal(err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.DeleteRepo(canceled, "acme/web"); err == nil {
		t.Fatal("delete with a cancelled context succeeded")
	}
	if _, err := os.Stat(filepath.Join(s.Disk.Dir, "acme", "web.git")); err != nil {
		t.Errorf("repository not in place after a failed delete: %v", err)
	}
	if _, err := s.Store.Repo(ctx, "acme", "web"); err != nil {
		t.Errorf("repository forgotten after a failed delete: %v", err)
	}
}

func TestDescriptionMustBeOneLine(t *testing.T) {
	ctx := context.Background()
	s := service(t)
	if _, err := s.CreateOrg(ctx, "acme", ""); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"two\nlines", "esc\x1b[2J", string(make([]byte, provision.MaxDescription+1))} {
		if _, _, err := s.CreateRepo(ctx, "acme/web", false, d); err == nil {
			t.Errorf("description %q accepted", d)
		}
	}
}
