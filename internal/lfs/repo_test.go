package lfs

import (
	"context"
	"errors"
	"strings"
	"testing"
)

func TestRepoPlan(t *testing.T) {
	r := Repo{Objects: Objects{Dir: t.TempDir(), MaxSize: 10}}
	if err := r.Objects.Put(oidOf("hello"), 5, strings.NewReader("hello")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		op   Operation
		oid  string
		size int64
		want Action
		err  error
	}{
		{"upload of a new object", Upload, oidOf("new"), 3, ActUpload, nil},
		{"upload of a stored one", Upload, oidOf("hello"), 5, ActNone, nil},
		{"upload of a stored id with another size", Upload, oidOf("hello"), 6, ActUpload, nil},
		{"upload over the limit", Upload, oidOf("big"), 11, "", ErrTooLarge},
		{"download of a stored one", Download, oidOf("hello"), 5, ActDownload, nil},
		{"download of a missing one", Download, oidOf("gone"), 4, ActMissing, nil},
		{"upper-case id", Upload, strings.ToUpper(oidOf("x")), 1, "", ErrInvalid},
		{"a path for an id", Download, "../../../etc/passwd", 1, "", ErrInvalid},
		{"negative size", Upload, oidOf("x"), -1, "", ErrInvalid},
	}
	for _, tt := range tests {
		got, err := r.Plan(tt.op, tt.oid, tt.size)
		if got != tt.want || !errors.Is(err, tt.err) {
			t.Errorf("%s: %q %v, want %q %v", tt.name, got, err, tt.want, tt.err)
		}
	}
}

func TestRepoUnlock(t *testing.T) {
	ctx := context.Background()
	held := func() *memLocks { return &memLocks{locks: []Lock{{ID: "1", Path: "a", Owner: "ann"}}} }
	tests := []struct {
		name  string
		repo  Repo
		force bool
		err   error
	}{
		{"the owner", Repo{User: "ann"}, false, nil},
		{"another writer", Repo{User: "bob", CanWrite: true}, true, ErrNotYours},
		{"an admin without force", Repo{User: "bob", Admin: true}, false, ErrNotYours},
		{"an admin with force", Repo{User: "bob", Admin: true}, true, nil},
	}
	for _, tt := range tests {
		tt.repo.Locks = held()
		if _, err := tt.repo.Unlock(ctx, "1", tt.force); !errors.Is(err, tt.err) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.err)
		}
	}
	if _, err := (Repo{User: "ann", Locks: held()}).Unlock(ctx, "2", false); !errors.Is(err, ErrNoLock) {
		t.Errorf("missing lock: %v", err)
	}
}

func TestRepoLockPath(t *testing.T) {
	r := Repo{User: "ann", Locks: &memLocks{}}
	for _, p := range []string{"", "a\nb", "a\x00b", "a\x1b[2Jb", "a\tb", "a\u0085b", strings.Repeat("x", maxLockPath+1),
		"a\u202eb", "a\u200bb", "\ufeffa", "a\xffb", "/etc/passwd", "../a", "..", ".", "a/../b", "a/./b", "a//b", "a/", "./a"} {
		if _, err := r.Lock(context.Background(), p); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v, want ErrInvalid", p, err)
		}
	}
	for _, p := range []string{"art/a.psd", "dossier/été 2026.psd", strings.Repeat("x", maxLockPath)} {
		if _, err := r.Lock(context.Background(), p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
}
