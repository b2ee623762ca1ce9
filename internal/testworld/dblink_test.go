package testworld

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// echoServer answers every line with itself until the test ends.
func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

// roundTrip sends one line over c and reports whether it came back.
func roundTrip(c net.Conn) bool {
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && line == "ping\n"
}

// A cut link resets the connections through it and refuses new ones; a
// restored one carries them again.
func TestDBLinkCutsAndRestores(t *testing.T) {
	l := StartDBLink(t, "127.0.0.1", echoServer(t))
	before, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	if !roundTrip(before) {
		t.Fatal("no echo through the link")
	}

	l.Cut()
	if roundTrip(before) {
		t.Error("a connection made before the cut still carries bytes")
	}
	during, err := net.Dial("tcp", l.Addr())
	if err == nil {
		if roundTrip(during) {
			t.Error("a connection made during the cut carries bytes")
		}
		during.Close()
	}

	l.Restore()
	after, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	if !roundTrip(after) {
		t.Error("no echo through the restored link")
	}
}

func TestDBLinkRewritesTheURL(t *testing.T) {
	l := StartDBLink(t, "127.0.0.1", echoServer(t))
	got, err := l.Via("postgres://cpm:secret@127.0.0.1:5432/db1?sslmode=disable")
	want := "postgres://cpm:secret@" + l.Addr() + "/db1?sslmode=disable"
	if err != nil || got != want {
		t.Fatalf("Via = %q, %v; want %q", got, err, want)
	}
}
