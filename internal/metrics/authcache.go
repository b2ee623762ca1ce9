package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"cpm/internal/authcache"
)

// RegisterAuthCache exports a serving node's authentication cache: its
// hits and misses, and whether it may answer now (1) or every read goes
// to the database (0).
func RegisterAuthCache(reg *prometheus.Registry, c *authcache.Cache) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "cpm_auth_cache_hits_total",
			Help: "Authentication and authorization reads answered from the node's cache.",
		}, func() float64 { h, _ := c.Counts(); return float64(h) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "cpm_auth_cache_misses_total",
			Help: "Authentication and authorization reads that went to the database.",
		}, func() float64 { _, m := c.Counts(); return float64(m) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cpm_auth_cache_current",
			Help: "1 while the cache's database listener is proven current and the cache may answer, else 0.",
		}, func() float64 {
			if c.Current() {
				return 1
			}
			return 0
		}),
	)
}
