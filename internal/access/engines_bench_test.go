package access

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"cpm/internal/authcache"
	"cpm/internal/authz"
	"cpm/internal/pgtest"
	"cpm/internal/store"
	"cpm/internal/store/storetest"
)

// BenchmarkEngines measures the store's hot paths on SQLite and on
// PostgreSQL (a throwaway server on loopback) in one run, each on a store
// of 10,000 users, 100,000 keys and 10,000 repositories: the key lookup
// that authenticates a connection, an authorization decision for a push
// (on PostgreSQL also both through a serving node's current cache, every
// read a hit: what a node serves from),
// a push's queue write (two backups), and claiming a job with 8 workers
// at once; and on PostgreSQL the round trip of SELECT 1, the floor under
// each of them. Each reports its median and 90th-percentile latency (median-ns,
// p90-ns); for the claims ns/op is the throughput of all 8. bench/store.sh
// prints them with the PostgreSQL/SQLite ratios.
func BenchmarkEngines(b *testing.B) {
	pg, err := pgtest.Start()
	if err != nil {
		b.Fatal(err)
	}
	defer pg.Stop()
	size := storetest.Size{Users: 10000, KeysPerUser: 10, Orgs: 100, ReposPerOrg: 100}
	for _, engine := range []string{"sqlite", "postgres"} {
		s, probes := engineStore(b, engine, pg, size)
		c := New(s, nil)
		ctx := context.Background()
		b.Run(engine+"/auth-lookup", func(b *testing.B) {
			timed(b, func(i int) error {
				_, err := s.KeyOwnerByFingerprint(ctx, probes[i%len(probes)].Fingerprint)
				return err
			})
		})
		b.Run(engine+"/authorize", func(b *testing.B) {
			ids := make([]Identity, len(probes))
			for i, p := range probes {
				if ids[i], err = c.Identify(ctx, p.Fingerprint); err != nil {
					b.Fatal(err)
				}
			}
			timed(b, func(i int) error {
				p := probes[i%len(probes)]
				res, err := c.Decide(ctx, ids[i%len(ids)], p.Org, p.Repo, authz.Push)
				if err == nil && !res.Allow {
					err = fmt.Errorf("%+v refused", p)
				}
				return err
			})
		})
		if engine == "postgres" {
			cachedPaths(b, s, probes)
		}
		b.Run(engine+"/queue-write", func(b *testing.B) {
			timed(b, func(i int) error {
				p := probes[i%len(probes)]
				return s.MarkDirty(ctx, p.Org, p.Repo)
			})
		})
		b.Run(engine+"/claim-8-workers", func(b *testing.B) { claims(b, s, 8) })
		if engine == "postgres" {
			// The floor under every PostgreSQL path: one statement's round
			// trip on loopback (IntegrityCheck is SELECT 1 there), which
			// SQLite, in the process, never pays.
			b.Run(engine+"/round-trip", func(b *testing.B) { timed(b, func(int) error { return s.IntegrityCheck(ctx) }) })
		}
		s.Close()
	}
}

func engineStore(b *testing.B, engine string, pg *pgtest.Server, size storetest.Size) (*store.Store, []storetest.Probe) {
	ctx := context.Background()
	var s *store.Store
	var probes []storetest.Probe
	var err error
	if engine == "sqlite" {
		path := filepath.Join(b.TempDir(), "cpm.db")
		if s, err = store.Init(ctx, path); err == nil {
			probes, err = storetest.Populate(ctx, path, size)
		}
	} else {
		var url string
		if url, err = pg.CreateDatabase(ctx); err == nil {
			if s, err = store.InitAt(ctx, url, ""); err == nil {
				probes, err = storetest.PopulatePostgres(ctx, url, size)
			}
		}
	}
	if err != nil {
		b.Fatal(err)
	}
	// Two backups: every repository has a queue row for each, as on a
	// node with replication configured.
	for _, name := range []string{"b1", "b2"} {
		if _, err := s.AddServer(ctx, store.Actor{Name: "bench"}, store.Server{Name: name, Host: "127.0.0.1", Port: 22, User: "cpm", Path: "/srv", Role: "backup"}); err != nil {
			b.Fatal(err)
		}
	}
	return s, probes
}

// timed runs op b.N times and reports the median latency.
func timed(b *testing.B, op func(i int) error) {
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t := time.Now()
		if err := op(i); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t))
	}
	b.StopTimer()
	reportMedian(b, lat)
}

// claims has workers claim jobs at once until b.N claims are done; each
// job is given back as failed and due at once, so the queue never runs
// dry. Only the claim is timed.
func claims(b *testing.B, s *store.Store, workers int) {
	ctx := context.Background()
	var left atomic.Int64
	left.Store(int64(b.N))
	var mu sync.Mutex
	var all []time.Duration
	var wg sync.WaitGroup
	b.ResetTimer()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			owner := fmt.Sprintf("bench-%d", w)
			for left.Add(-1) >= 0 {
				t := time.Now()
				j, ok, err := s.Claim(ctx, owner, 0, time.Minute, nil)
				lat = append(lat, time.Since(t))
				if err != nil || !ok {
					b.Errorf("claim: %v %v", ok, err)
					return
				}
				if err := s.Failed(ctx, j, "bench", time.Now().Add(-time.Second), false); err != nil {
					b.Error(err)
					return
				}
			}
			mu.Lock()
			all = append(all, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	b.StopTimer()
	reportMedian(b, all)
}

func reportMedian(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "median-ns")
	b.ReportMetric(float64(lat[len(lat)*9/10].Nanoseconds()), "p90-ns")
}

// cachedPaths times the authentication lookup and the authorization
// decision on PostgreSQL through a serving node's cache, kept current by
// its real listener, once every probe has been read (every read a hit).
func cachedPaths(b *testing.B, s *store.Store, probes []storetest.Probe) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cache := authcache.New()
	done := make(chan struct{})
	go func() { defer close(done); authcache.Listen(ctx, s, cache, "bench", zerolog.Nop()) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); !cache.Current(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatal("the cache's listener did not confirm")
		}
	}
	c := New(s, nil).WithCache(cache)
	ids := make([]Identity, len(probes))
	for i, p := range probes {
		var err error
		if ids[i], err = c.Identify(ctx, p.Fingerprint); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Decide(ctx, ids[i], p.Org, p.Repo, authz.Push); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("postgres/auth-lookup-cached", func(b *testing.B) {
		timed(b, func(i int) error {
			_, err := c.Identify(ctx, probes[i%len(probes)].Fingerprint)
			return err
		})
	})
	b.Run("postgres/authorize-cached", func(b *testing.B) {
		timed(b, func(i int) error {
			p := probes[i%len(probes)]
			res, err := c.Decide(ctx, ids[i%len(ids)], p.Org, p.Repo, authz.Push)
			if err == nil && !res.Allow {
				err = fmt.Errorf("%+v refused", p)
			}
			return err
		})
	})
	hits, misses := cache.Counts()
	b.Logf("cache: %d hits, %d misses, %d entries", hits, misses, cache.Len())
}
