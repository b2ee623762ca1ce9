package access

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"cpm/internal/authz"
	"cpm/internal/store"
	"cpm/internal/store/storetest"
)

// BenchmarkReadable measures what `info` asks the store for a user who
// reads 3 repositories, on sites of 100 and of 50,000 private
// repositories: the SQL pick (Readable, the goal: within 1.1x from 100 to
// 50,000) and, for comparison, every repository's facts filtered by
// authz (how Readable worked before). bench/scale.sh prints the ratios.
func BenchmarkReadable(b *testing.B) {
	for _, n := range []int{100, 50000} {
		ctx := context.Background()
		path := filepath.Join(b.TempDir(), "cpm.db")
		s, err := store.Init(ctx, path)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := storetest.Populate(ctx, path, storetest.Size{Orgs: n / 100, ReposPerOrg: 100, Private: true}); err != nil {
			b.Fatal(err)
		}
		a := store.Actor{Name: "bench"}
		if _, err := s.CreateUser(ctx, a, "reader", false, &store.NewKey{Fingerprint: "SHA256:reader", Type: "ssh-ed25519", PublicKey: "x"}); err != nil {
			b.Fatal(err)
		}
		for r := 1; r <= 3; r++ {
			if err := s.Grant(ctx, a, "org1", fmt.Sprintf("repo%d", r), "reader", "read"); err != nil {
				b.Fatal(err)
			}
		}
		c := New(s, nil)
		id, err := c.Identify(ctx, "SHA256:reader")
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("repos=%d/sql", n), func(b *testing.B) {
			for b.Loop() {
				if ls, err := c.Readable(ctx, id); err != nil || len(ls) != 3 {
					b.Fatalf("%d listed, %v", len(ls), err)
				}
			}
		})
		b.Run(fmt.Sprintf("repos=%d/every-repository", n), func(b *testing.B) {
			for b.Loop() {
				all, err := s.AllRepoFacts(ctx, id.UserID)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for _, f := range all {
					p, af := Translate(id, f)
					if authz.Effective(p, af) >= authz.PermRead {
						n++
					}
				}
				if n != 3 {
					b.Fatalf("%d readable", n)
				}
			}
		})
		s.Close()
	}
}
