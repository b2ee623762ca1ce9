package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"cpm/internal/authlimit"
)

func TestAuthCountsTheLimitersEvents(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := NewAuth(reg)
	l := authlimit.New("http", authlimit.Config{Burst: 1}, a)
	l.Failed("192.0.2.1")
	l.Allow("192.0.2.1")
	l.Allow("192.0.2.1")
	got := map[string]float64{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "transport" && lp.GetValue() == "http" {
					got[f.GetName()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	if got["cpm_auth_failures_total"] != 1 || got["cpm_auth_rate_limited_total"] != 2 {
		t.Errorf("counted %v", got)
	}
	var none *Auth
	none.Failed("http") // no metrics: no panic
	none.Limited("http")
}
