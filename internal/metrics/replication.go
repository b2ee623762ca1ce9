package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"cpm/internal/replicate"
	"cpm/internal/store"
	"cpm/internal/targetstate"
)

// Replication holds the replication metrics.
type Replication struct {
	lag      *prometheus.HistogramVec
	duration *prometheus.HistogramVec
	attempts *prometheus.CounterVec
	failures *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	mismatch *prometheus.CounterVec
	repairs  *prometheus.CounterVec
	speed    *prometheus.GaugeVec

	mu sync.Mutex
	// sent sums the bytes and seconds of successful syncs per target,
	// for their average speed.
	sent map[string]transfer
}

type transfer struct{ bytes, seconds float64 }

// NewReplication registers the replication metrics on reg. The queue's
// pending count and oldest unsynced age per target are read from st at
// every scrape, so they are right even after a restart.
func NewReplication(reg *prometheus.Registry, st *store.Store) *Replication {
	buckets := []float64{0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300, 1800, 7200}
	m := &Replication{
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cpm_replication_delay_seconds", Help: "From the oldest unsynced push to a verified replica.", Buckets: buckets,
		}, []string{"target"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cpm_replication_sync_duration_seconds", Help: "Duration of one sync attempt.", Buckets: buckets,
		}, []string{"target"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cpm_replication_attempts_total", Help: "Sync attempts by target and result.",
		}, []string{"target", "result"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cpm_replication_failures_total", Help: "Failed syncs by target and cause; cause metadata counts failed metadata deliveries (a backup's database snapshot, a neighbour's permissions).",
		}, []string{"target", "cause"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cpm_replication_bytes_sent_total", Help: "Bytes rsync sent.",
		}, []string{"target"}),
		mismatch: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cpm_replication_verify_mismatches_total", Help: "Syncs whose target refs differed from the snapshot.",
		}, []string{"target"}),
		repairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cpm_replication_repairs_total", Help: "Replicas whose object files were missing or damaged and were sent again, by cause.",
		}, []string{"target", "cause"}),
		speed: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cpm_replication_average_speed_bytes_per_second", Help: "Bytes per second of the successful syncs to the target since the server started.",
		}, []string{"target"}),
		sent: map[string]transfer{},
	}
	reg.MustRegister(m.lag, m.duration, m.attempts, m.failures, m.bytes, m.mismatch, m.repairs, m.speed, queueCollector{st})
	return m
}

// Repaired counts one repaired replica.
func (m *Replication) Repaired(target, cause string) { m.repairs.WithLabelValues(target, cause).Inc() }

// Observe records one finished attempt.
func (m *Replication) Observe(ev replicate.Event) {
	if ev.Metadata {
		if !ev.OK {
			m.failures.WithLabelValues(ev.Target, ev.Cause).Inc()
		}
		return
	}
	m.duration.WithLabelValues(ev.Target).Observe(ev.Duration.Seconds())
	m.bytes.WithLabelValues(ev.Target).Add(float64(ev.Bytes))
	if ev.OK {
		m.attempts.WithLabelValues(ev.Target, "ok").Inc()
		m.lag.WithLabelValues(ev.Target).Observe(ev.Lag.Seconds())
		m.observeSpeed(ev)
		return
	}
	m.attempts.WithLabelValues(ev.Target, "failed").Inc()
	m.failures.WithLabelValues(ev.Target, ev.Cause).Inc()
	if ev.Cause == "verify" {
		m.mismatch.WithLabelValues(ev.Target).Inc()
	}
}

// observeSpeed adds a successful sync to its target's average speed:
// all bytes over all seconds, so that many small syncs do not drown
// one large one.
func (m *Replication) observeSpeed(ev replicate.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.sent[ev.Target]
	t.bytes += float64(ev.Bytes)
	t.seconds += ev.Duration.Seconds()
	m.sent[ev.Target] = t
	m.speed.WithLabelValues(ev.Target).Set(t.bytes / max(t.seconds, 0.001))
}

var (
	pendingDesc = prometheus.NewDesc("cpm_replication_pending", "Repositories not yet synced to the target.", []string{"target"}, nil)
	oldestDesc  = prometheus.NewDesc("cpm_replication_oldest_unsynced_seconds", "Age of the oldest push not yet on the target.", []string{"target"}, nil)
	upDesc      = prometheus.NewDesc("cpm_replication_target_up", "1 if the target takes syncs now (its state is ok or pending).", []string{"target"}, nil)
	successDesc = prometheus.NewDesc("cpm_replication_last_success_timestamp_seconds", "When the last verified sync to the target finished (Unix time; absent before the first).", []string{"target"}, nil)
	stateDesc   = prometheus.NewDesc("cpm_replication_target_state", "1 for the target's current state (ok, pending, retrying, blocked, promoted, unapproved, disabled).", []string{"target", "state"}, nil)
)

// queueCollector reads the queue at scrape time.
type queueCollector struct{ st *store.Store }

func (q queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pendingDesc
	ch <- oldestDesc
	ch <- upDesc
	ch <- successDesc
	ch <- stateDesc
}

func (q queueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	jobs, err := q.st.Jobs(ctx)
	if err != nil {
		return
	}
	servers, err := q.st.Servers(ctx)
	if err != nil {
		return
	}
	now := time.Now()
	// Only servers that exist now: a removed one's series go with it.
	for _, s := range servers {
		st := targetstate.Of(s, jobs, now)
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(st.Pending), s.Name)
		ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, st.Lag.Seconds(), s.Name)
		up := 0.0
		if st.Up() {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(upDesc, prometheus.GaugeValue, up, s.Name)
		if !st.LastSync.IsZero() {
			// From the queue, not from memory: right after a restart too.
			ch <- prometheus.MustNewConstMetric(successDesc, prometheus.GaugeValue, float64(st.LastSync.UnixMilli())/1000, s.Name)
		}
		for _, state := range targetstate.States() {
			v := 0.0
			if state == st.State {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(stateDesc, prometheus.GaugeValue, v, s.Name, state.String())
		}
	}
}
