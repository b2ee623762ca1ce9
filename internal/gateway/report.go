package gateway

import (
	"fmt"
	"time"

	"cpm/internal/access"
	"cpm/internal/command"
)

// report is the one place a session's result becomes the client's cpm:
// line, the log event and the metric; it returns the exit status.
func (g *Gateway) report(s Session, r result, bytesIn, bytesOut int64, d time.Duration) int {
	o := access.OutcomeOf(r.err)
	status := r.status
	if r.err != nil {
		fmt.Fprintln(s.Stderr, clientLine(r.err))
		if status == 0 {
			status = 1
		}
	}
	g.Metrics.sessionEnded(r.verb, o, bytesIn, bytesOut, d)
	ev := g.Log.Info()
	switch o {
	case access.Refused:
		ev = g.Log.Warn().Str("reason", clientLine(r.err))
	case access.Failed:
		ev = g.Log.Error().Err(r.err)
	}
	if c := s.Identity.Cert; c != nil {
		ev = ev.Str("cert_key_id", c.KeyID).Uint64("cert_serial", c.Serial).Str("cert_ca", c.CA)
	}
	if s.Relayed != "" {
		ev = ev.Str("via", s.Relayed)
	}
	if s.Transport != "" {
		ev = ev.Str("transport", s.Transport)
	}
	if t := s.Identity.Token; t != nil {
		ev = ev.Int64("token", t.ID) // the id, never the secret
	}
	ev.Str("user", s.Identity.Name()).
		Str("key", s.Identity.Fingerprint).
		Str("remote", s.RemoteAddr).
		Str("command", r.verb).
		Str("repo", r.repo).
		Str("decision", o.String()).
		Int64("bytes_in", bytesIn).
		Int64("bytes_out", bytesOut).
		Int64("duration_ms", d.Milliseconds()).
		Int("status", status).
		Msg("session")
	return status
}

// admit refuses a user session before its command is decided: over HTTP
// (stateless) only git's fetch and push exist, and a cluster node whose
// lease does not hold serves nothing.
func (g *Gateway) admit(s Session, cmd command.Command) error {
	if s.Stateless != "" && cmd.Verb != command.UploadPack && cmd.Verb != command.ReceivePack {
		return refuse("%s is not served over HTTP", cmd.Verb)
	}
	return g.fenced()
}
