package access

import (
	"context"
	"path/filepath"
	"testing"

	"cpm/internal/authz"
	"cpm/internal/store"
	"cpm/internal/store/storetest"
)

// BenchmarkHotPath measures what the gateway does per connection: key
// fingerprint -> identity -> facts -> decision for one repository (a push).
// The first two runs put the same load, 100 distinct callers, on a store
// of 10 users and on one of 10,000 users, 100,000 keys and 10,000
// repositories: the large one must stay within 1.5x of the small one
// (bench/hotpath.sh prints the ratio). The third spreads the load over
// 1,000 callers, which adds CPU-cache misses but no SQL work.
func BenchmarkHotPath(b *testing.B) {
	sizes := []struct {
		name string
		size storetest.Size
	}{
		{"users=10", storetest.Size{Users: 10, KeysPerUser: 10, Orgs: 1, ReposPerOrg: 10}},
		{"users=10000", storetest.Size{Users: 10000, KeysPerUser: 10, Orgs: 100, ReposPerOrg: 100}},
		{"users=10000/callers=1000", storetest.Size{Users: 10000, KeysPerUser: 10, Orgs: 100, ReposPerOrg: 100, Probes: 1000}},
	}
	for _, sz := range sizes {
		b.Run(sz.name, func(b *testing.B) {
			ctx := context.Background()
			path := filepath.Join(b.TempDir(), "cpm.db")
			s, err := store.Init(ctx, path)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			probes, err := storetest.Populate(ctx, path, sz.size)
			if err != nil {
				b.Fatal(err)
			}
			c := New(s, nil)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				p := probes[i%len(probes)]
				id, err := c.Identify(ctx, p.Fingerprint)
				if err != nil {
					b.Fatal(err)
				}
				res, err := c.Decide(ctx, id, p.Org, p.Repo, authz.Push)
				if err != nil || !res.Allow {
					b.Fatalf("%+v: %+v %v", p, res, err)
				}
			}
		})
	}
}
