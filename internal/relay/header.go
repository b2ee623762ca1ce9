// Package relay is the header of `cpm-peer relay`: the one JSON line a
// node of a cluster sends the repository's primary before a user's
// session, naming who the user is and what they asked for. The primary
// identifies the user afresh from it and decides with its own rules; the
// header is what the sending node vouches for, and its reader refuses
// anything that is not exactly such a line.
package relay

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"

	"cpm/internal/command"
	"cpm/internal/gitservice"
	"cpm/internal/printable"
)

// MaxHeader bounds the header line, newline included.
const MaxHeader = 8 << 10

// Header names one relayed session.
type Header struct {
	// Command is the client's command line, as it sent it.
	Command string `json:"command"`
	// Key is the SHA256 fingerprint of the key the user authenticated
	// with (for a certificate, the certificate's key).
	Key string `json:"key"`
	// User is the user a certificate authenticated; "" for a key.
	User string `json:"user,omitempty"`
	// Cert names the certificate; nil for a plain key.
	Cert *Cert `json:"cert,omitempty"`
	// Remote is the client's address, for logs and the audit.
	Remote string `json:"remote"`
	// Protocol is the client's GIT_PROTOCOL ("" for none).
	Protocol string `json:"protocol"`
	// Anonymous is an anonymous client's fetch (git://, HTTP without a
	// token): no key, no user, and only git-upload-pack, which the
	// primary decides as for anyone.
	Anonymous bool `json:"anonymous,omitempty"`
	// Hops counts the relays of this session, this one included: 1 from
	// the node the client connected to, 2 when the node it reached had
	// handed the repository over meanwhile and relays it on (the last
	// hop allowed). Absent from older nodes: 1.
	Hops int `json:"hops,omitempty"`
	// Stateless is a smart HTTP request's mode (gitservice.Advertise or
	// RPC): the primary answers that one request and exits.
	Stateless gitservice.Stateless `json:"stateless,omitempty"`
	// Transport names how the client came ("http"; absent for ssh).
	Transport string `json:"transport,omitempty"`
	// Token is the HTTP access token the user authenticated with, in
	// place of Key: the primary identifies it afresh. It travels inside
	// the nodes' ssh only and is never logged.
	Token string `json:"token,omitempty"`
	// Mode is ModeLFSHTTP for one request of the Git LFS HTTP API: an
	// HTTP request follows the header, and the primary answers it with
	// an HTTP response; absent for a session of Command itself.
	Mode string `json:"mode,omitempty"`
	// URL is the base URL the client used (ModeLFSHTTP only): the batch
	// answer's actions point there, not at the primary.
	URL string `json:"url,omitempty"`
}

// ModeLFSHTTP is the relay of one Git LFS HTTP API request.
const ModeLFSHTTP = "lfs-http"

// MaxHops is how many times one session may be relayed.
const MaxHops = 2

// Cert names the certificate that authenticated a relayed user.
type Cert struct {
	KeyID  string `json:"key_id"`
	Serial uint64 `json:"serial"`
	CA     string `json:"ca"`
}

// relayable are the commands a node hands to a repository's primary:
// the ones on a repository (whoami and info are answered where the user
// connected, cpm-peer verbs are never a user's).
var relayable = map[command.Verb]bool{
	command.UploadPack: true, command.ReceivePack: true, command.UploadArchive: true,
	command.LFSTransfer: true, command.Merge: true,
}

var fingerprintRe = regexp.MustCompile(`^SHA256:[A-Za-z0-9+/]{43}$`)

// Check validates h: a command a user may have relayed, a key
// fingerprint, a user name exactly when a certificate is named, and
// short printable words elsewhere.
func (h Header) Check() (command.Command, error) {
	cmd, err := command.Parse(h.Command)
	if err != nil {
		return command.Command{}, err
	}
	if !relayable[cmd.Verb] {
		return command.Command{}, fmt.Errorf("%s is not relayed", cmd.Verb)
	}
	lfsHTTP := h.Mode == ModeLFSHTTP
	if err := h.checkMode(cmd); err != nil {
		return command.Command{}, err
	}
	if h.Anonymous {
		// An LFS HTTP download is as anonymous as a git:// fetch.
		if (cmd.Verb != command.UploadPack && !(lfsHTTP && cmd.Operation == "download")) || h.Key != "" || h.Token != "" || h.User != "" || h.Cert != nil {
			return command.Command{}, errors.New("anonymous: git-upload-pack or an LFS HTTP download only, with no key, token, user or certificate")
		}
	} else if h.Token != "" {
		if h.Key != "" || h.Cert != nil || len(h.Token) > 256 || printable.Line(h.Token) != h.Token {
			return command.Command{}, errors.New("token: a short printable value, with no key or certificate")
		}
	} else if !fingerprintRe.MatchString(h.Key) {
		// A certificate's key too: the audit names it.
		return command.Command{}, errors.New("key: want a SHA256 fingerprint")
	}
	if h.Hops < 0 || h.Hops > MaxHops {
		return command.Command{}, fmt.Errorf("hops: %d, at most %d", h.Hops, MaxHops)
	}
	if !h.Stateless.Valid() || (h.Stateless != "" && cmd.Verb != command.UploadPack && cmd.Verb != command.ReceivePack) {
		return command.Command{}, errors.New("stateless: advertise or rpc, for upload-pack and receive-pack only")
	}
	if h.Transport != "" && h.Transport != "http" {
		return command.Command{}, errors.New(`transport: "http" or none`)
	}
	if (h.Cert == nil) != (h.User == "") {
		return command.Command{}, errors.New("user and cert go together")
	}
	for name, v := range map[string]string{"user": h.User, "remote": h.Remote, "protocol": h.Protocol} {
		if len(v) > 256 || printable.Line(v) != v {
			return command.Command{}, fmt.Errorf("%s: not a short printable value", name)
		}
	}
	if c := h.Cert; c != nil && (len(c.KeyID) > 1024 || len(c.CA) > 256 || printable.Line(c.KeyID) != c.KeyID || printable.Line(c.CA) != c.CA) {
		return command.Command{}, errors.New("cert: not short printable values")
	}
	return cmd, nil
}

// checkMode validates the relay mode: none, or an LFS HTTP request of
// git-lfs-transfer's verb with the http transport and the client's
// base URL.
func (h Header) checkMode(cmd command.Command) error {
	switch h.Mode {
	case "":
		if h.URL != "" {
			return errors.New("url: for mode lfs-http only")
		}
		return nil
	case ModeLFSHTTP:
	default:
		return fmt.Errorf("mode: %q is none of %q", printable.Cut(h.Mode, 40), ModeLFSHTTP)
	}
	if cmd.Verb != command.LFSTransfer || h.Transport != "http" || h.Stateless != "" {
		return errors.New("mode lfs-http: git-lfs-transfer over http only")
	}
	u, err := url.Parse(h.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(h.URL) > 256 ||
		printable.Line(h.URL) != h.URL || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return errors.New("url: want the http(s) base URL the client used")
	}
	return nil
}

// Write sends h as the first line of a relayed session.
func Write(w io.Writer, h Header) error {
	b, err := json.Marshal(h)
	if err != nil {
		return fmt.Errorf("relay header: %w", err)
	}
	if len(b)+1 > MaxHeader {
		return errors.New("relay header: too long")
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Read reads the header line from r, which must have room for
// MaxHeader bytes (bufio.NewReaderSize), and checks it; the session's
// stream follows in r. Anything longer, malformed, with unknown fields
// or more than one value is refused.
func Read(r *bufio.Reader) (Header, command.Command, error) {
	line, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) || len(line) > MaxHeader {
		return Header{}, command.Command{}, fmt.Errorf("relay header: longer than %d bytes", MaxHeader)
	}
	if err != nil {
		return Header{}, command.Command{}, fmt.Errorf("relay header: %w", err)
	}
	var h Header
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return Header{}, command.Command{}, fmt.Errorf("relay header: %w", err)
	}
	if dec.More() {
		return Header{}, command.Command{}, errors.New("relay header: more than one value")
	}
	cmd, err := h.Check()
	if err != nil {
		return Header{}, command.Command{}, fmt.Errorf("relay header: %w", err)
	}
	return h, cmd, nil
}
