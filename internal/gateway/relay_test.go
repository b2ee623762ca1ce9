package gateway

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"cpm/internal/access"
	"cpm/internal/command"
	"cpm/internal/relay"
	"cpm/internal/store"
)

func TestPeerMayRun(t *testing.T) {
	var (
		user      = access.Identity{KeyOwner: store.KeyOwner{UserID: 1, User: "alice"}}
		neighbour = access.Identity{Peer: "b"}
		node      = access.Identity{Peer: "n2", Node: true}
	)
	tests := []struct {
		who   string
		id    access.Identity
		verb  command.Verb
		allow bool
	}{
		{"user", user, command.UploadPack, true},
		{"user", user, command.PeerRelay, false},
		{"user", user, command.PeerHello, false},
		{"neighbour", neighbour, command.PeerMeta, true},
		{"neighbour", neighbour, command.PeerForward, true},
		{"neighbour", neighbour, command.PeerRsyncIn, true},
		{"neighbour", neighbour, command.PeerRelay, false},
		{"neighbour", neighbour, command.PeerReceivePack, false},
		{"user", user, command.PeerReceivePack, false},
		{"node", node, command.PeerReceivePack, true},
		{"neighbour", neighbour, command.UploadPack, false},
		{"node", node, command.PeerHello, true},
		{"node", node, command.PeerPrepare, true},
		{"node", node, command.PeerRsyncIn, true},
		{"node", node, command.PeerRsyncOut, true},
		{"node", node, command.PeerRefs, true},
		{"node", node, command.PeerSpace, true},
		{"node", node, command.PeerRelay, true},
		{"node", node, command.PeerMeta, false},
		{"node", node, command.PeerRekey, false},
		{"node", node, command.PeerForward, false},
		{"node", node, command.PeerWant, false},
		{"node", node, command.UploadPack, false},
		{"node", node, command.ReceivePack, false},
		{"node", node, command.Whoami, false},
	}
	for _, tt := range tests {
		if why := peerMayRun(tt.id, tt.verb); (why == "") != tt.allow {
			t.Errorf("%s runs %s: %q, want allowed %v", tt.who, tt.verb, why, tt.allow)
		}
	}
}

// relayWorld is the world with a user whose key has a real-looking
// fingerprint, as relay headers carry.
func relayWorld(t *testing.T) (world, string) {
	w := newWorld(t)
	fp := "SHA256:" + strings.Repeat("m", 43)
	ctx := context.Background()
	must(t, func() error {
		_, err := w.gw.Store.CreateUser(ctx, store.Actor{Name: "test"}, "reader", false,
			&store.NewKey{Fingerprint: fp, Type: "ssh-ed25519", PublicKey: "ssh-ed25519 reader"})
		return err
	})
	must(t, func() error { return w.gw.Store.Grant(ctx, store.Actor{Name: "test"}, "acme", "web", "reader", "read") })
	return w, fp
}

func (w world) relay(from access.Identity, stdin string) (int, string, string) {
	var out, errOut bytes.Buffer
	status := w.gw.Serve(context.Background(), Session{Identity: from, Command: "cpm-peer relay",
		Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut})
	return status, out.String(), errOut.String()
}

func header(t *testing.T, h relay.Header) string {
	var b bytes.Buffer
	if err := relay.Write(&b, h); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestRelayIn(t *testing.T) {
	w, fp := relayWorld(t)
	node := access.Identity{KeyOwner: store.KeyOwner{Fingerprint: "SHA256:node"}, Peer: "n2", Node: true}
	neighbour := access.Identity{KeyOwner: store.KeyOwner{Fingerprint: "SHA256:nb"}, Peer: "b"}
	read := header(t, relay.Header{Command: "git-upload-pack 'acme/web.git'", Key: fp, Remote: "127.0.0.9:4000", Protocol: "version=2"})
	push := header(t, relay.Header{Command: "git-receive-pack 'acme/web.git'", Key: fp})
	unknown := header(t, relay.Header{Command: "git-upload-pack acme/web", Key: "SHA256:" + strings.Repeat("u", 43)})
	tests := []struct {
		name           string
		from           access.Identity
		stdin          string
		status         int
		stdout, stderr string
	}{
		{"a node relays a read", node, read + "0000", 0, "version 2", ""},
		// The primary's own decision, in the words the user would get there.
		{"a node relays a push the user may not make", node, push + "0000", 1, "", "cpm: acme/web: permission denied (needs write, has read)\n"},
		{"an unknown key", node, unknown + "0000", 1, "", "is not registered"},
		{"a neighbour may not relay", neighbour, read + "0000", 1, "", "cpm: cpm-peer relay is for nodes of this cluster\n"},
		{"a user may not relay", w.ids["owner"], read + "0000", 1, "", "cpm: cpm-peer commands are for approved neighbour nodes\n"},
		{"header too long", node, strings.Repeat("x", relay.MaxHeader+1) + "\n", 1, "", "relay header: longer than"},
		{"header not JSON", node, "git-upload-pack acme/web\n", 1, "", "relay header"},
		{"a certificate's user, by name", node, header(t, relay.Header{Command: "git-upload-pack acme/web", Key: fp, User: "member", Protocol: "version=2",
			Cert: &relay.Cert{KeyID: "member@laptop", Serial: 9, CA: "corp"}}) + "0000", 0, "version 2", ""},
		{"a certificate's user who is gone", node, header(t, relay.Header{Command: "git-upload-pack acme/web", Key: fp, User: "ghost",
			Cert: &relay.Cert{KeyID: "ghost@laptop", Serial: 9, CA: "corp"}}) + "0000", 1, "", "is not registered"},
		{"a peer verb in the header", node, `{"command":"cpm-peer meta","key":"` + fp + `"}` + "\n", 1, "", "relay header: cpm-peer meta is not relayed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, stdout, stderr := w.relay(tt.from, tt.stdin)
			if status != tt.status || !strings.Contains(stdout, tt.stdout) || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("status %d, stdout %q, stderr %q", status, stdout, stderr)
			}
			if tt.status != 0 && strings.Count(stderr, "\n") != 1 {
				t.Errorf("want one line on stderr, got %q", stderr)
			}
		})
	}
}

// A node that never finishes its header does not hold the session.
func TestRelayHeaderIsTimed(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	_, err := readHeader(bufio.NewReaderSize(pr, relay.MaxHeader), 50*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "none within") {
		t.Fatalf("a silent node's header: %v", err)
	}
}
