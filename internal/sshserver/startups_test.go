package sshserver

import (
	"net"
	"testing"
)

func TestDropReason(t *testing.T) {
	p := Startups{Start: 10, Rate: 30, Full: 20, PerSource: 4}
	tests := []struct {
		name                   string
		policy                 Startups
		open, fromSource, roll int
		want                   string
	}{
		{"empty", p, 0, 0, 0, ""},
		{"below start", p, 9, 3, 0, ""},
		{"source at its cap", p, 5, 4, 99, "per-source limit"},
		{"source cap before full", p, 20, 4, 99, "per-source limit"},
		{"at start, roll under rate", p, 10, 0, 29, "random early drop"},
		{"at start, roll at rate", p, 10, 0, 30, ""},
		{"half way: 65%", p, 15, 0, 64, "random early drop"},
		{"half way, lucky", p, 15, 0, 65, ""},
		{"just below full: 93%", p, 19, 0, 92, "random early drop"},
		{"full", p, 20, 0, 99, "full"},
		{"over full", p, 25, 0, 99, "full"},
		{"hard limit below", Startups{Start: 5, Rate: 100, Full: 5}, 4, 4, 0, ""},
		{"hard limit at", Startups{Start: 5, Rate: 100, Full: 5}, 5, 0, 99, "full"},
		{"no per-source cap", Startups{Start: 5, Rate: 30, Full: 9}, 4, 4, 0, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.policy.dropReason(tc.open, tc.fromSource, tc.roll); got != tc.want {
				t.Errorf("dropReason(%d, %d, %d) = %q, want %q", tc.open, tc.fromSource, tc.roll, got, tc.want)
			}
		})
	}
}

func TestStartupGate(t *testing.T) {
	g := newStartupGate(Startups{Start: 3, Rate: 100, Full: 3, PerSource: 2})
	g.roll = func() int { return 99 }
	a := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 1}
	b := &net.TCPAddr{IP: net.ParseIP("127.0.0.2"), Port: 1}
	leaveA, _ := g.enter(a)
	if _, r := g.enter(a); r != "" {
		t.Fatalf("second from a: %q", r)
	}
	if _, r := g.enter(a); r != "per-source limit" {
		t.Fatalf("third from a: %q", r)
	}
	leaveB, r := g.enter(b)
	if r != "" {
		t.Fatalf("first from b: %q", r)
	}
	if _, r := g.enter(b); r != "full" {
		t.Fatalf("fourth in all: %q", r)
	}
	leaveA()
	leaveB()
	if _, r := g.enter(b); r != "" {
		t.Fatalf("after two left: %q", r)
	}
	if g.open != 2 || g.bySource[sourceOf(b)] != 1 {
		t.Errorf("open %d, from b %d", g.open, g.bySource[sourceOf(b)])
	}
}

func TestSourceOf(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"192.0.2.7:22", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:22", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:22", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:9", "2001:db8:1:2::/64"},
	}
	for _, tc := range tests {
		a, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := sourceOf(a); got != tc.want {
			t.Errorf("sourceOf(%s) = %q, want %q", tc.addr, got, tc.want)
		}
	}
	if got := sourceOf(&net.UnixAddr{Name: "@x", Net: "unix"}); got != "@x" {
		t.Errorf("unix: %q", got)
	}
}
