package replicate

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"cpm/internal/names"
	"cpm/internal/repos"
	"cpm/internal/store"
	"cpm/internal/transfer"
)

// A maintenance pass never starts while another is running: in this
// process (the ticker and a caller at once) or in another process on the
// same data directory (cpm-shell serve beside cpm-shell replicate).
func TestMaintenancePassRunsOnce(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	st, err := store.Init(ctx, filepath.Join(root, "cpm.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := store.Actor{Name: "test"}
	if _, err := st.CreateOrg(ctx, a, "acme", ""); err != nil {
		t.Fatal(err)
	}
	r := repos.Root{Dir: filepath.Join(root, "repos"), Trash: filepath.Join(root, "trash")}
	if _, err := st.CreateRepo(ctx, a, store.NewRepo{Org: "acme", Name: "web"}, func(store.Repo) error {
		_, err := r.Create(ctx, "acme", "web", "")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	syncer := &transfer.Syncer{Root: r, TempDir: root, LockDir: filepath.Join(root, "locks")}
	w := &Workers{Store: st, Syncer: syncer, Log: zerolog.Nop()}

	// The first pass waits inside for the repository's lock, held here.
	unlock, err := syncer.Lock(context.Background(), names.RepoPath{Org: "acme", Repo: "web"})
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan bool)
	go func() { first <- w.MaintainOnce(ctx) }()
	waitUntil(t, func() bool { return w.maintaining.Load() })
	if w.MaintainOnce(ctx) {
		t.Error("a second pass ran while the first was running")
	}
	unlock()
	if !<-first {
		t.Error("the first pass did not run")
	}

	// Another process holds the pass's lock (flock(1), as a second
	// cpm-shell on this data directory would).
	holder := exec.Command("flock", "--no-fork", filepath.Join(root, "locks", "maintenance.lock"), "sleep", "60")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { holder.Process.Kill(); holder.Wait() }()
	waitUntil(t, func() bool {
		unlock, held, err := transfer.TryLockFile(filepath.Join(root, "locks", "maintenance.lock"), false)
		if held {
			unlock()
		}
		return err == nil && !held
	})
	if w.MaintainOnce(ctx) {
		t.Error("a pass ran while another process held the pass's lock")
	}
	holder.Process.Kill()
	holder.Wait()
	if !w.MaintainOnce(ctx) {
		t.Error("no pass ran once the other process was gone")
	}
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
