package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"cpm/internal/access"
	"cpm/internal/command"
	"cpm/internal/relay"
	"cpm/internal/store"
)

// Relayer runs a user's session on another node of this cluster (the
// repository's primary) with `cpm-peer relay`: h first, then stdin; the
// primary's output and refusals go to stdout and stderr as they come.
// It returns the primary's exit status, and an error only when the
// primary could not be reached or did not answer to the end.
type Relayer func(ctx context.Context, to store.Server, h relay.Header, stdin io.Reader, stdout, stderr io.Writer) (int, error)

// relayOut serves the session on the repository's primary, through this
// node. A write runs in the session's lingering context: it returns only
// when the push landed there (post-receive done), whether or not the
// client waits for it.
func (g *Gateway) relayOut(ctx context.Context, s Session, cmd command.Command, primary store.Server) (int, error) {
	name := cmd.Repo.String()
	if g.Relay == nil {
		return 1, &failure{line: "cpm: internal error; try again later", err: errors.New("no relay to the primary configured")}
	}
	h := relay.Header{Command: s.Command, Key: s.Identity.Fingerprint, Remote: s.RemoteAddr, Protocol: s.GitProtocol,
		Anonymous: s.Identity == access.Anonymous && s.Token == "", Hops: s.Hops + 1,
		Stateless: s.Stateless, Transport: s.Transport, Token: s.Token}
	if s.LFSURL != "" {
		h.Mode, h.URL = relay.ModeLFSHTTP, s.LFSURL
	}
	if s.Token != "" {
		h.Key = "" // the token names the user; the primary identifies it afresh
	}
	if c := s.Identity.Cert; c != nil {
		h.User, h.Cert = s.Identity.User, &relay.Cert{KeyID: c.KeyID, Serial: c.Serial, CA: c.CA}
	}
	run := ctx
	if writes(cmd) {
		run = s.lingering(ctx)
	}
	status, err := g.Relay(run, primary, h, s.Stdin, s.Stdout, s.Stderr)
	if err != nil && ctx.Err() == nil {
		return 1, &failure{line: "cpm: " + name + ": its primary node is unreachable; try again later",
			err: fmt.Errorf("relay to %s: %w", primary.Name, err)}
	}
	return status, nil
}

// relayIn serves a session that another node of this cluster relayed
// here (it is the repository's primary, as that node saw it). The node
// vouches for who the user is and nothing more: the user is identified
// afresh here (a key removed a moment ago is refused), decided by this
// node's own rules as if connected here, served here (never relayed
// again) unless this node may no longer serve it (placeHere: it lost the
// primary meanwhile), and logged and audited with the relaying node as
// via. Within a cluster nodes trust each other, so the user keeps every
// right, unlike a neighbour's forwarded push.
func (g *Gateway) relayIn(ctx context.Context, s Session) (int, error) {
	in := bufio.NewReaderSize(s.Stdin, relay.MaxHeader)
	h, err := readHeader(in, relayHeaderTimeout)
	if err != nil {
		return 1, refuse("%v", err)
	}
	id, err := g.relayedIdentity(ctx, h)
	if err != nil {
		return 1, err
	}
	if h.Mode == relay.ModeLFSHTTP {
		cmd, _ := h.Check() // checked by readHeader
		return g.serveRelayedLFS(ctx, id, h, cmd, s.Identity.Peer, in, s.Stdout, s.Stderr), nil
	}
	user := Session{Identity: id, Command: h.Command, GitProtocol: h.Protocol, RemoteAddr: h.Remote,
		Relayed: s.Identity.Peer, Hops: max(h.Hops, 1), Linger: s.Linger, Stdin: in, Stdout: s.Stdout, Stderr: s.Stderr,
		Stateless: h.Stateless, Transport: h.Transport, Token: h.Token}
	// The user's own session event and refusal line come from Request;
	// the relay session itself then ends with the user's status, which
	// for an HTTP request names its refusal's kind (relayedExit).
	status, err := g.Request(ctx, user)
	if user.Stateless != "" {
		status = relayedExit(status, err)
	}
	return status, nil
}

// relayHeaderTimeout bounds the wait for a relay's header: a node sends
// it at once, and one that trickles it must not hold a session.
const relayHeaderTimeout = 10 * time.Second

// readHeader reads the relay header from in within timeout. On a
// timeout the reading goroutine stays blocked until the session ends,
// which closes its input.
func readHeader(in *bufio.Reader, timeout time.Duration) (relay.Header, error) {
	type read struct {
		h   relay.Header
		err error
	}
	done := make(chan read, 1)
	go func() {
		h, _, err := relay.Read(in)
		done <- read{h, err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-done:
		return r.h, r.err
	case <-t.C:
		return relay.Header{}, fmt.Errorf("relay header: none within %s", timeout)
	}
}

// relayedIdentity is the user a relay header names, as this node's
// database knows them now: by key, or for a certificate (which the
// relaying node checked) by user name.
func (g *Gateway) relayedIdentity(ctx context.Context, h relay.Header) (access.Identity, error) {
	var id access.Identity
	var err error
	if h.Anonymous {
		return access.Anonymous, nil // decided as any anonymous client: public repositories only
	}
	if h.Token != "" {
		return g.relayedToken(ctx, h.Token)
	}
	if h.Cert != nil {
		id, err = g.Access.IdentifyUser(ctx, h.User)
		id.Fingerprint = h.Key
		id.Cert = &access.CertInfo{KeyID: h.Cert.KeyID, Serial: h.Cert.Serial, CA: h.Cert.CA}
	} else {
		id, err = g.Access.Identify(ctx, h.Key)
	}
	switch {
	case errors.Is(err, access.ErrUnknownKey) || (err == nil && (id.Peer != "" || id.Remote != "")):
		// Never a node's or a neighbour's key, nor one known only to a
		// neighbour's replica: those are no users here.
		return access.Identity{}, refuse("permission denied: key %s is not registered", h.Key)
	case err != nil:
		return access.Identity{}, &failure{line: "cpm: internal error; try again later", err: fmt.Errorf("identify relayed user: %w", err)}
	}
	return id, nil
}

// FetchElsewhere serves an anonymous git:// fetch of grant's repository
// on its primary when this node's copy is not current there, as the ssh
// sessions are (see relays); it reports whether it did. conn carries
// git's protocol both ways; the primary's refusals have no way to the
// client before git's own bytes, so they end the connection.
func (g *Gateway) FetchElsewhere(ctx context.Context, grant access.Grant, protocol, remote string, conn io.ReadWriter) (bool, int, error) {
	cmd := command.Command{Verb: command.UploadPack, Repo: grant.Repo}
	s := Session{Identity: access.Anonymous, Command: "git-upload-pack '" + grant.Repo.String() + "'", GitProtocol: protocol,
		RemoteAddr: remote, Stdin: conn, Stdout: conn, Stderr: io.Discard}
	_, elsewhere, status, err := g.servedElsewhere(ctx, s, cmd, grant)
	return elsewhere, status, err
}

// relayedToken is the identity of a relayed HTTP session's access token,
// as this node's database knows it now.
func (g *Gateway) relayedToken(ctx context.Context, secret string) (access.Identity, error) {
	if g.Tokens == nil {
		return access.Identity{}, refuse("permission denied: access tokens are not accepted here")
	}
	id, err := g.Tokens.IdentifyToken(ctx, secret)
	switch {
	case errors.Is(err, access.ErrUnknownToken):
		// Unknown, expired and revoked look alike.
		return access.Identity{}, refuse("permission denied: the access token is not valid")
	case err != nil:
		return access.Identity{}, &failure{line: "cpm: internal error; try again later", err: fmt.Errorf("identify relayed token: %w", err)}
	}
	return id, nil
}
