package store_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"cpm/internal/store"
	"cpm/internal/store/storetest"
)

// BenchmarkMeta measures what a neighbour costs after every change: the
// origin exports and encodes its metadata, the neighbour applies it in
// one transaction. Run: go test ./internal/store -run x -bench Meta
// -benchtime 3x. Reports bytes on the wire per key.
func BenchmarkMeta(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "cpm.db")
	origin, err := store.Init(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer origin.Close()
	// The hot-path benchmark's large store: 10,000 users, 100,000 keys,
	// 10,000 repositories.
	if _, err := storetest.Populate(ctx, path, storetest.Size{Users: 10000, KeysPerUser: 10, Orgs: 100, ReposPerOrg: 100}); err != nil {
		b.Fatal(err)
	}
	peer, err := store.Init(ctx, filepath.Join(b.TempDir(), "peer.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer peer.Close()
	b.Run("export", func(b *testing.B) {
		for range b.N {
			m, err := origin.ExportMeta(ctx)
			if err != nil {
				b.Fatal(err)
			}
			body, _ := json.Marshal(m)
			b.ReportMetric(float64(len(body))/float64(len(m.Keys)), "bytes/key")
		}
	})
	m, err := origin.ExportMeta(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("apply", func(b *testing.B) {
		for range b.N {
			if err := peer.ReplaceMeta(ctx, store.Actor{Name: "bench"}, m); err != nil {
				b.Fatal(err)
			}
		}
	})
}
