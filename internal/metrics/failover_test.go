package metrics

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"cpm/internal/store"
)

func TestFailoverMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	held := true
	m := NewFailover(reg, func() bool { return held })
	m.Elected(store.Election{Cause: store.CauseLeaseExpired, Without: 11 * time.Second})
	m.Elected(store.Election{Cause: store.CauseMove})
	m.Renewed(3 * time.Millisecond)
	var nilM *Failover
	nilM.Elected(store.Election{Cause: store.CauseDrain}) // records nothing, no panic
	nilM.Renewed(time.Second)
	scrape := func() string {
		rec := httptest.NewRecorder()
		promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		return rec.Body.String()
	}
	out := scrape()
	for _, want := range []string{
		`cpm_failovers_total{cause="lease_expired"} 1`,
		`cpm_failovers_total{cause="move"} 1`,
		`cpm_failovers_total{cause="drain"} 0`,
		`cpm_without_primary_seconds_count 1`,
		`cpm_without_primary_seconds_sum 11`,
		`cpm_lease_renew_seconds_count 1`,
		`cpm_lease_held 1`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %s in:\n%s", want, out)
		}
	}
	held = false
	if out := scrape(); !strings.Contains(out, "cpm_lease_held 0") {
		t.Errorf("lease lost, still held:\n%s", out)
	}
}
