// Package metrics exposes cpm's Prometheus metrics: one registry per
// process (no global default registry), served on --metrics-listen.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"cpm/internal/access"
	"cpm/internal/gateway"
)

// Gateway holds the session metrics.
type Gateway struct {
	Registry *prometheus.Registry
	active   prometheus.Gauge
	sessions *prometheus.CounterVec
	denials  *prometheus.CounterVec
	bytes    *prometheus.CounterVec
	duration *prometheus.HistogramVec
	dropped  *prometheus.CounterVec
	fenced   prometheus.Counter
}

// NewGateway registers the gateway's metrics on a new registry.
func NewGateway() *Gateway {
	m := &Gateway{
		Registry: prometheus.NewRegistry(),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cpm_sessions_active", Help: "Sessions running now.",
		}),
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cpm_sessions_total", Help: "Sessions by command and decision.",
		}, []string{"command", "decision"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cpm_denials_total", Help: "Refused sessions by command.",
		}, []string{"command"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cpm_session_bytes_total", Help: "Bytes carried by sessions, by direction.",
		}, []string{"direction"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cpm_session_duration_seconds", Help: "Session duration by command.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 9),
		}, []string{"command"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cpm_ssh_startups_dropped_total", Help: "SSH connections dropped before authentication for want of a slot, by reason.",
		}, []string{"reason"}),
		fenced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cpm_sessions_fenced_total", Help: "User sessions refused because this cluster node's lease did not hold.",
		}),
	}
	m.Registry.MustRegister(m.active, m.sessions, m.denials, m.bytes, m.duration, m.dropped, m.fenced,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Hooks returns the callbacks the gateway reports to.
func (m *Gateway) Hooks() *gateway.Metrics {
	return &gateway.Metrics{
		Started: m.active.Inc,
		Ended: func(command string, decision access.Outcome, in, out int64, d time.Duration) {
			m.active.Dec()
			m.sessions.WithLabelValues(command, decision.String()).Inc()
			if decision == access.Refused {
				m.denials.WithLabelValues(command).Inc()
			}
			m.bytes.WithLabelValues("in").Add(float64(in))
			m.bytes.WithLabelValues("out").Add(float64(out))
			m.duration.WithLabelValues(command).Observe(d.Seconds())
		},
		Fenced: m.fenced.Inc,
	}
}

// Dropped counts an SSH connection dropped before authentication (see
// sshserver.Startups): the server logs only a sample of those.
func (m *Gateway) Dropped(reason string) { m.dropped.WithLabelValues(reason).Inc() }

// Handler serves the registry in the Prometheus text format.
func (m *Gateway) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}
