// Package discover finds cpm nodes on a network through their git://
// port.
//
// The handshake: the prober sends one pkt-line whose payload is
// "cpm-identify" followed by a NUL. A real git client never sends it (git
// always asks for "git-upload-pack PATH" and friends), and a plain git
// daemon treats it as an unknown service and hangs up without a word. A
// cpm node answers with one pkt-line:
//
//	cpm name=NODE version=VERSION ssh=PORT key=TYPE:BASE64
//
// and closes the connection. key is the node's replication public key
// (what `server pubkey` prints, with ':' for the space): a node that
// registers this one as a neighbour accepts replicas signed with it once
// its operator approves. Older nodes leave key out. Anything else, or silence within the timeout,
// is not a cpm node.
package discover

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"

	"cpm/internal/names"
)

var versionRe = regexp.MustCompile(`^[A-Za-z0-9.+_-]{1,32}$`)

// Request is the probe's payload.
const Request = "cpm-identify"

// Node is a cpm node that answered.
type Node struct {
	Host    string `json:"host"`
	Port    int    `json:"port"`
	Name    string `json:"name"`
	Version string `json:"version"`
	SSHPort int    `json:"ssh_port"`
	// Key is the node's replication key, "TYPE BASE64", if it sent one.
	Key string `json:"replication_key,omitempty"`
}

// Answer is the pkt-line a node sends back; key ("TYPE BASE64") may be
// empty.
func Answer(name, version string, sshPort int, key string) []byte {
	line := fmt.Sprintf("cpm name=%s version=%s ssh=%d", name, version, sshPort)
	if typ, b64, ok := strings.Cut(strings.TrimSpace(key), " "); ok {
		line += " key=" + typ + ":" + strings.Fields(b64)[0]
	}
	line += "\n"
	return []byte(fmt.Sprintf("%04x%s", len(line)+4, line))
}

// ParseAnswer reads a node's answer.
func ParseAnswer(r io.Reader) (Node, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Node{}, err
	}
	n, err := strconv.ParseUint(string(hdr[:]), 16, 16)
	if err != nil || n < 8 || n > 512 {
		return Node{}, errors.New("not a cpm answer")
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		return Node{}, err
	}
	f := strings.Fields(string(body))
	if (len(f) != 4 && len(f) != 5) || f[0] != "cpm" {
		return Node{}, errors.New("not a cpm answer")
	}
	var node Node
	for _, kv := range f[1:] {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "name":
			node.Name = v
		case "version":
			node.Version = v
		case "ssh":
			node.SSHPort, _ = strconv.Atoi(v)
		case "key":
			typ, b64, _ := strings.Cut(v, ":")
			k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(typ + " " + b64))
			if err != nil {
				return Node{}, errors.New("not a cpm answer")
			}
			node.Key = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
		}
	}
	// The answer comes from the network: it must hold a valid cpm name (it
	// becomes a server name and is printed on the operator's terminal).
	if names.Check(names.User, node.Name) != nil || !versionRe.MatchString(node.Version) ||
		node.SSHPort < 1 || node.SSHPort > 65535 {
		return Node{}, errors.New("not a cpm answer")
	}
	return node, nil
}

// Probe asks one address whether it is a cpm node.
func Probe(ctx context.Context, addr netip.Addr, port int, timeout time.Duration) (Node, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(addr, uint16(port)).String())
	if err != nil {
		return Node{}, err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	payload := Request + "\x00"
	if _, err := fmt.Fprintf(c, "%04x%s", len(payload)+4, payload); err != nil {
		return Node{}, err
	}
	node, err := ParseAnswer(c)
	if err != nil {
		return Node{}, err
	}
	node.Host, node.Port = addr.String(), port
	return node, nil
}

// MaxHostBits bounds a scan: a /16 of IPv4 (65,536 addresses) unless forced.
const MaxHostBits = 16

// Scan probes every address of prefix, and nothing else, concurrently,
// and returns the cpm nodes in address order.
func Scan(ctx context.Context, prefix netip.Prefix, port, concurrency int, timeout time.Duration, force bool) ([]Node, error) {
	prefix = prefix.Masked()
	hostBits := prefix.Addr().BitLen() - prefix.Bits()
	if hostBits > MaxHostBits && !force {
		return nil, fmt.Errorf("%s has 2^%d addresses; scanning more than a /%d needs --force", prefix, hostBits, prefix.Addr().BitLen()-MaxHostBits)
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("invalid port %d", port)
	}
	var (
		mu    sync.Mutex
		found []Node
		wg    sync.WaitGroup
		slots = make(chan struct{}, max(1, concurrency))
	)
	for a := prefix.Addr(); prefix.Contains(a); a = a.Next() {
		if ctx.Err() != nil {
			break
		}
		slots <- struct{}{}
		wg.Add(1)
		go func(a netip.Addr) {
			defer wg.Done()
			defer func() { <-slots }()
			if n, err := Probe(ctx, a, port, timeout); err == nil {
				mu.Lock()
				found = append(found, n)
				mu.Unlock()
			}
		}(a)
		if !a.Next().IsValid() {
			break
		}
	}
	wg.Wait()
	sortNodes(found)
	return found, ctx.Err()
}

func sortNodes(ns []Node) {
	sort.Slice(ns, func(i, j int) bool {
		a, _ := netip.ParseAddr(ns[i].Host)
		b, _ := netip.ParseAddr(ns[j].Host)
		return a.Less(b)
	})
}
