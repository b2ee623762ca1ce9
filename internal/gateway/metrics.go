package gateway

import (
	"time"

	"cpm/internal/access"
)

// Metrics receives the gateway's counters; a nil *Metrics records nothing.
type Metrics struct {
	Started func()
	Ended   func(command string, decision access.Outcome, bytesIn, bytesOut int64, d time.Duration)
	// Fenced counts a user session refused because this node's lease
	// did not hold.
	Fenced func()
}

func (m *Metrics) sessionFenced() {
	if m != nil && m.Fenced != nil {
		m.Fenced()
	}
}

func (m *Metrics) sessionStarted() {
	if m != nil && m.Started != nil {
		m.Started()
	}
}

func (m *Metrics) sessionEnded(command string, decision access.Outcome, in, out int64, d time.Duration) {
	if m != nil && m.Ended != nil {
		m.Ended(command, decision, in, out, d)
	}
}
