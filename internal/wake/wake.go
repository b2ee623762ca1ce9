// Package wake is how a push tells the replication workers there is work:
// a byte on a unix socket (the queue itself is in the database, or in
// internal/queue's marker files). cpm-hook runs on every push, so this
// package links nothing of ssh, rsync or the workers.
package wake

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"
)

// What a wake-up says.
const (
	work  byte = 1 // something was queued
	retry byte = 2 // an operator asked to retry everything now
)

// Work tells workers listening on the socket at path that there is work.
// It never blocks a push for long and never fails one.
func Work(path string) { send(path, work) }

// Retry also closes every circuit breaker: the operator says the servers
// are back.
func Retry(path string) { send(path, retry) }

func send(path string, b byte) {
	c, err := net.DialTimeout("unix", path, 100*time.Millisecond)
	if err != nil {
		return
	}
	c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	c.Write([]byte{b})
	c.Close()
}

// Listen listens on the socket at path and signals woke for every
// connection (after calling onRetry, when that is what it asked for); it
// stops when ctx ends.
func Listen(ctx context.Context, path string, woke chan<- struct{}, onRetry func()) error {
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen %s: %w", path, err)
	}
	os.Chmod(path, 0o600)
	go func() { <-ctx.Done(); ln.Close(); os.Remove(path) }()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.SetReadDeadline(time.Now().Add(time.Second))
			var b [1]byte
			c.Read(b[:])
			c.Close()
			if b[0] == retry && onRetry != nil {
				onRetry()
			}
			select {
			case woke <- struct{}{}:
			default:
			}
		}
	}()
	return nil
}
