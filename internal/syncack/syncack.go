// Package syncack is how cpm-hook post-receive, on a repository's
// primary node, waits until replica nodes hold a push before git
// acknowledges it to the client: it asks the node's workers process (the
// one that holds the replication ssh connections and the settings
// sync_replicas and sync_timeout) over a unix socket in the data
// directory (0600) and prints what they answer. cpm-hook runs on every
// push, so this package links nothing of ssh, rsync or the workers; the
// workers' side is a handler that internal/node provides.
//
// The exchange is two JSON lines each way at most: the hook's Request;
// the workers' Accepted (how long they may take), then their Answer.
package syncack

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"cpm/internal/names"
)

// Request asks for a push to be written into replica nodes: the
// repository, the generation the push was recorded as, and the epoch it
// was accepted under.
type Request struct {
	Repo       string `json:"repo"`
	Generation int64  `json:"generation"`
	Epoch      int64  `json:"epoch"`
	// Unreplicated reports a push that post-receive acknowledged with a
	// warning and without asking (its database step failed, or the node
	// was fenced): the workers only count it (cpm_push_unreplicated_total).
	Unreplicated bool `json:"unreplicated,omitempty"`
}

// Accepted is the workers' first line: how long the answer may take.
type Accepted struct {
	TimeoutMS int64 `json:"timeout_ms"`
}

// Answer is the outcome: the replica nodes that hold the push, and a
// warning for the client when fewer than required do.
type Answer struct {
	Replicated []string `json:"replicated,omitempty"`
	Warning    string   `json:"warning,omitempty"`
}

// Handler writes the push of a request into replicas; it must return by
// the deadline of its context.
type Handler func(ctx context.Context, req Request) Answer

// maxLine bounds a line read from the socket.
const maxLine = 64 << 10

// Ask sends req to the workers listening at path and waits for their
// answer, as long as they said it may take (plus a margin).
func Ask(ctx context.Context, path string, req Request) (Answer, error) {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	c, err := d.DialContext(dctx, "unix", path)
	cancel()
	if err != nil {
		return Answer{}, errors.New("the node's replication workers do not answer")
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return Answer{}, fmt.Errorf("ask the replication workers: %w", err)
	}
	r := bufio.NewReader(io.LimitReader(c, 2*maxLine))
	var acc Accepted
	if err := readLine(r, &acc); err != nil {
		return Answer{}, err
	}
	c.SetDeadline(time.Now().Add(time.Duration(acc.TimeoutMS)*time.Millisecond + 5*time.Second))
	var ans Answer
	if err := readLine(r, &ans); err != nil {
		return Answer{}, err
	}
	return ans, nil
}

func readLine(r *bufio.Reader, v any) error {
	line, err := r.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("the replication workers' answer: %w", err)
	}
	if err := json.Unmarshal(line, v); err != nil {
		return fmt.Errorf("the replication workers' answer: %w", err)
	}
	return nil
}

// Listen serves requests on the unix socket at path (0600) until ctx
// ends, each with h under a deadline of timeout from its arrival.
func Listen(ctx context.Context, path string, timeout time.Duration, h Handler) error {
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("listen %s: %w", path, err)
	}
	go func() { <-ctx.Done(); ln.Close(); os.Remove(path) }()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serve(ctx, c, timeout, h)
		}
	}()
	return nil
}

// serve answers one request. A request that names no repository gets no
// answer: only cpm-hook, as the data directory's owner, connects here.
func serve(ctx context.Context, c net.Conn, timeout time.Duration, h Handler) {
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var req Request
	if err := readLine(bufio.NewReader(io.LimitReader(c, maxLine)), &req); err != nil {
		return
	}
	if _, err := names.ParseRepoPath(req.Repo); err != nil || req.Generation < 0 || req.Epoch < 0 {
		return
	}
	c.SetWriteDeadline(time.Now().Add(timeout + 5*time.Second))
	enc := json.NewEncoder(c)
	if enc.Encode(Accepted{TimeoutMS: timeout.Milliseconds()}) != nil {
		return
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	enc.Encode(h(hctx, req))
}
