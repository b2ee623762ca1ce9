package metrics

import "github.com/prometheus/client_golang/prometheus"

// Pushes counts what synchronous replication could not promise: pushes
// acknowledged to their client while fewer replica nodes than
// sync_replicas held them (none answered within sync_timeout, or none
// was live).
type Pushes struct {
	unreplicated prometheus.Counter
}

// NewPushes registers the push metrics on reg.
func NewPushes(reg *prometheus.Registry) *Pushes {
	p := &Pushes{unreplicated: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cpm_push_unreplicated_total",
		Help: "Pushes acknowledged while fewer replica nodes than sync_replicas held them.",
	})}
	reg.MustRegister(p.unreplicated)
	return p
}

// Unreplicated counts one such push; on a nil Pushes (no metrics) it
// does nothing.
func (p *Pushes) Unreplicated() {
	if p != nil {
		p.unreplicated.Inc()
	}
}
