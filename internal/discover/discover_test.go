package discover

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func pkt(s string) string { return fmt.Sprintf("%04x%s", len(s)+4, s) }

func TestParseAnswer(t *testing.T) {
	n, err := ParseAnswer(bytes.NewReader(Answer("node-a", "0.4.0", 2222, "")))
	if err != nil || n.Name != "node-a" || n.Version != "0.4.0" || n.SSHPort != 2222 || n.Key != "" {
		t.Fatalf("%+v %v", n, err)
	}
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
	n, err = ParseAnswer(bytes.NewReader(Answer("node-a", "0.4.0", 2222, key+" cpm-replication@node-a")))
	if err != nil || n.Key != key {
		t.Fatalf("with key: %+v %v", n, err)
	}
	for _, bad := range []string{
		"",
		"0000",
		pkt("ERR access denied\n"),
		pkt("cpm name=x version=1 ssh=0\n"),
		pkt("cpm name=x version=1 ssh=70000\n"),
		pkt("cpm name=\x1b[2J version=1 ssh=22\n"),
		pkt("cpm name=../x version=1 ssh=22\n"),
		pkt("cpm name=x version=$(id) ssh=22\n"),
		pkt("cpm name=x version=1\n"),
		pkt("git name=x version=1 ssh=22\n"),
		pkt("cpm name=x version=1 ssh=22 key=ssh-ed25519:AAAAnotakey\n"),
		pkt("cpm name=x version=1 ssh=22 key=ssh-ed25519:AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl extra\n"),
		"ffff" + strings.Repeat("a", 100),
	} {
		if n, err := ParseAnswer(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %q as %+v", bad, n)
		}
	}
}

func TestScanBounds(t *testing.T) {
	ctx := context.Background()
	for _, p := range []string{"10.0.0.0/8", "127.0.0.0/15", "::/64"} {
		if _, err := Scan(ctx, netip.MustParsePrefix(p), 9418, 50, time.Second, false); err == nil {
			t.Errorf("%s scanned without --force", p)
		}
	}
	if _, err := Scan(ctx, netip.MustParsePrefix("127.0.0.1/32"), 0, 50, time.Second, false); err == nil {
		t.Error("port 0 accepted")
	}
}

// Scan touches the addresses of the prefix and nothing else.
func TestScanStaysInside(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	hits := make(chan string, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			hits <- c.RemoteAddr().String()
			c.Write(Answer("me", "1", 22, ""))
			c.Close()
		}
	}()
	// 127.0.0.1 is outside 127.0.0.2/31: no probe may reach it.
	nodes, err := Scan(context.Background(), netip.MustParsePrefix("127.0.0.2/31"), port, 50, time.Second, false)
	if err != nil || len(nodes) != 0 || len(hits) != 0 {
		t.Fatalf("probed outside the prefix: %v %v %d", nodes, err, len(hits))
	}
	nodes, err = Scan(context.Background(), netip.MustParsePrefix("127.0.0.1/32"), port, 50, time.Second, false)
	if err != nil || len(nodes) != 1 || nodes[0].Host != "127.0.0.1" || nodes[0].SSHPort != 22 {
		t.Fatalf("%v %v", nodes, err)
	}
}
