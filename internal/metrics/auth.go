package metrics

import "github.com/prometheus/client_golang/prometheus"

// Auth counts failed authentications and the attempts refused for too
// many of them (internal/authlimit), by transport.
type Auth struct {
	failures *prometheus.CounterVec
	limited  *prometheus.CounterVec
}

// NewAuth registers the authentication metrics on reg.
func NewAuth(reg *prometheus.Registry) *Auth {
	a := &Auth{
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cpm_auth_failures_total", Help: "Failed authentications (an unknown, revoked or expired token, …) by transport.",
		}, []string{"transport"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cpm_auth_rate_limited_total", Help: "Authentication attempts refused because their source address failed too often, by transport.",
		}, []string{"transport"}),
	}
	reg.MustRegister(a.failures, a.limited)
	return a
}

// Failed counts one failed authentication; a nil Auth counts nothing.
func (a *Auth) Failed(transport string) {
	if a != nil {
		a.failures.WithLabelValues(transport).Inc()
	}
}

// Limited counts one attempt refused by the rate limit; a nil Auth
// counts nothing.
func (a *Auth) Limited(transport string) {
	if a != nil {
		a.limited.WithLabelValues(transport).Inc()
	}
}
