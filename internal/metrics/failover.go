package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"cpm/internal/store"
)

// Failover holds a cluster node's lease and election metrics. A nil
// *Failover records nothing.
type Failover struct {
	failovers *prometheus.CounterVec
	without   prometheus.Histogram
	renew     prometheus.Histogram
}

// NewFailover registers the lease and election metrics on reg; held
// says, at every scrape, whether the node's lease holds now.
func NewFailover(reg *prometheus.Registry, held func() bool) *Failover {
	m := &Failover{
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cpm_failovers_total", Help: "Changes of a repository's primary this node carried out, by cause (lease_expired, move, drain).",
		}, []string{"cause"}),
		without: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cpm_without_primary_seconds", Help: "How long a repository had no primary that could take writes, from the old primary's last heartbeat to the election.",
			Buckets: []float64{1, 2, 5, 10, 12, 15, 20, 30, 60, 300},
		}),
		renew: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cpm_lease_renew_seconds", Help: "Latency of this node's successful lease renewals.",
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
		}),
	}
	lease := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "cpm_lease_held", Help: "1 while this node's lease holds (it takes sessions), 0 while it is fenced.",
	}, func() float64 {
		if held() {
			return 1
		}
		return 0
	})
	reg.MustRegister(m.failovers, m.without, m.renew, lease)
	for _, c := range []string{store.CauseLeaseExpired, store.CauseMove, store.CauseDrain} {
		m.failovers.WithLabelValues(c) // every cause from 0, for rate()
	}
	return m
}

// Elected counts one change of primary.
func (m *Failover) Elected(e store.Election) {
	if m == nil {
		return
	}
	m.failovers.WithLabelValues(e.Cause).Inc()
	if e.Cause == store.CauseLeaseExpired {
		m.without.Observe(e.Without.Seconds())
	}
}

// Renewed records one lease renewal's latency.
func (m *Failover) Renewed(d time.Duration) {
	if m != nil {
		m.renew.Observe(d.Seconds())
	}
}
