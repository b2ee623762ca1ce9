// Package remote runs ssh and rsync against replication targets with
// cpm's own key and a known_hosts file that pins each target's host key
// under the target's own name (HostKeyAlias), so that two targets on one
// host:port never vouch for each other: StrictHostKeyChecking=yes,
// BatchMode, no agent, bounded timeouts.
package remote

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"cpm/internal/capbuf"
	"cpm/internal/datadir"
	"cpm/internal/printable"
	"cpm/internal/shellquote"
)

// Target is where a server's replicas live.
type Target struct {
	Name string
	Host string
	Port int
	User string
	Path string // absolute; replicas at PATH/ORG/REPO.git
	// HostKey is the pinned host key ("TYPE BASE64"). It names the
	// control socket, so a connection made under one pin never serves
	// another.
	HostKey string
	// Peer is set for a neighbour: a cpm node, reached through its
	// gateway's cpm-peer commands instead of a shell.
	Peer bool
	// Refs, when set, are the only refs shipped (ref patterns).
	Refs []string
	// BWLimit caps rsync's rate in KiB/s (0: none); Compress is rsync's
	// compression level (0: none).
	BWLimit, Compress int
	// UseNext says the server already takes the next key of a key
	// rotation (Env.NextKey).
	UseNext bool
}

// Env is cpm's identity towards its targets.
type Env struct {
	Key        string // private key file
	NextKey    string // the new key while a rotation is under way
	KnownHosts string
	// ControlDir, when set, holds ssh control sockets: one connection per
	// target carries the mkdir, the rsync runs and the verification of a
	// sync, instead of a handshake each (about 0.3 s apiece).
	ControlDir string
}

// ForDataDir is the ssh environment of a data directory: cpm's
// replication key (and the next one while a rotation is under way), the
// pins in known_hosts, and the control sockets under DATA/ssh. Every ssh
// that cpm runs to a server (syncs, checks, rotation, forwarded pushes)
// is made from it, so all of them share one connection per server.
func ForDataDir(dir datadir.Dir) Env {
	return Env{Key: dir.ReplicationKey(), NextKey: dir.NextReplicationKey(), KnownHosts: dir.KnownHosts(), ControlDir: dir.Control()}
}

// maxSocketPath is the room a unix socket path has (sun_path), less
// what ssh appends for its temporary name.
const maxSocketPath = 104 - 24

var (
	hostRe = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?$`)
	userRe = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	pathRe = regexp.MustCompile(`^/[A-Za-z0-9._/-]*$`)
)

// CheckTarget validates what goes into ssh and rsync command lines.
func CheckTarget(t Target) error {
	switch {
	case net.ParseIP(t.Host) == nil && !hostRe.MatchString(t.Host):
		return fmt.Errorf("invalid host %q", t.Host)
	case t.Port < 1 || t.Port > 65535:
		return fmt.Errorf("invalid port %d", t.Port)
	case !userRe.MatchString(t.User):
		return fmt.Errorf("invalid user %q", t.User)
	case !pathRe.MatchString(t.Path) || strings.Contains(t.Path, "/../") || strings.HasSuffix(t.Path, "/..") || strings.Contains(t.Path, "//"):
		return fmt.Errorf("invalid path %q: want an absolute path of letters, digits, . _ - /", t.Path)
	}
	return nil
}

// HostKeyAlias is the name under which known_hosts pins the target
// named name: ssh looks its key up under that name alone, whatever its
// host and port, so a pin is checked for its own server only.
func HostKeyAlias(name string) string { return "cpm-server." + name }

// SSHArgs are the options of every ssh cpm runs against t.
func (e Env) SSHArgs(t Target) []string {
	key := e.Key
	if t.UseNext {
		key = e.NextKey
	}
	args := []string{
		"-i", key,
		"-o", "IdentitiesOnly=yes",
		"-o", "IdentityAgent=none",
		"-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile=" + e.KnownHosts,
		"-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "HostKeyAlias=" + HostKeyAlias(t.Name),
		"-o", "CheckHostIP=no",
		"-o", "ConnectTimeout=10",
		"-o", "ServerAliveInterval=15",
		"-o", "ServerAliveCountMax=4",
		"-o", "LogLevel=ERROR",
		"-p", strconv.Itoa(t.Port),
	}
	if p := e.controlPath(t); p != "" {
		args = append(args, "-o", "ControlMaster=auto", "-o", "ControlPath="+p, "-o", "ControlPersist=30")
	}
	return args
}

// controlPath names the control socket for t, or "" when multiplexing is
// off or the path would not fit in a socket address.
func (e Env) controlPath(t Target) string {
	if e.ControlDir == "" {
		return ""
	}
	// One master per server, address and pinned host key, and per client
	// key: a connection made under one pin or with one key must never
	// stand in for a test of another. The hash keeps the name short.
	sum := sha256.Sum256([]byte(t.User + "@" + t.Host + ":" + strconv.Itoa(t.Port) + " " + t.HostKey))
	p := filepath.Join(e.ControlDir, t.Name+"@"+hex.EncodeToString(sum[:6]))
	if t.UseNext {
		p += "+next"
	}
	if len(p) > maxSocketPath {
		return ""
	}
	return p
}

// PromotedMarker is the file, under a backup's path, that `cpm-admin
// promote` leaves there: "DATE by NODE". A main that finds it stops
// writing to that server.
const PromotedMarker = ".cpm/promoted"

// PromotedTag starts what a promoted backup answers on stderr, from the
// fence below or from the forced command promote puts on the old main's
// key.
const PromotedTag = "cpm-promoted:"

// PromotedExit is the exit status that goes with PromotedTag.
const PromotedExit = 77

// Fence runs command on a backup only while it has not been promoted:
// every command cpm runs on a backup, and rsync through --rsync-path, goes
// through it. Neighbours guard themselves.
func Fence(t Target, command string) string {
	if t.Peer || t.Path == "" {
		return command
	}
	f := shellquote.Quote(t.Path + "/" + PromotedMarker)
	return "if [ -e " + f + " ]; then printf '" + PromotedTag + " %s\\n' \"$(head -c 200 " + f + ")\" >&2; exit " +
		strconv.Itoa(PromotedExit) + "; fi; " + command
}

// RsyncShell is rsync's -e value: the same ssh, as one string.
func (e Env) RsyncShell(t Target) string {
	args := append([]string{"ssh"}, e.SSHArgs(t)...)
	for i, a := range args {
		args[i] = shellquote.Quote(a)
	}
	return strings.Join(args, " ")
}

// Dest is rsync's remote spec for a path on t.
func Dest(t Target, path string) string { return t.User + "@" + t.Host + ":" + path }

// Error is a failed ssh or rsync run, classified for retrying.
type Error struct {
	Op     string
	Code   int
	Stderr string
}

func (e *Error) Error() string {
	if _, notice, ok := strings.Cut(e.Stderr, PromotedTag); ok {
		notice, _, _ = strings.Cut(notice, "\n")
		return e.Op + ": promoted on " + strings.TrimSpace(notice) + "; this node is no longer its main"
	}
	switch {
	case strings.Contains(e.Stderr, "REMOTE HOST IDENTIFICATION HAS CHANGED") || strings.Contains(e.Stderr, "Host key verification failed"):
		return e.Op + ": Host key verification failed: the server's host key is not the one pinned at server add"
	case strings.Contains(e.Stderr, "Permission denied (publickey"):
		return e.Op + ": the server refused cpm's key; on a backup, install the output of cpm-admin server pubkey; on a neighbour, register and approve this node there"
	}
	msg := printable.Line(e.Stderr)
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return fmt.Sprintf("%s: exit %d: %s", e.Op, e.Code, msg)
}

// Blocking reports whether retrying cannot help until an operator acts:
// the host key does not match the pinned one, or the key is refused.
func (e *Error) Blocking() bool {
	return e.Promoted() || strings.Contains(e.Stderr, "Host key verification failed") ||
		strings.Contains(e.Stderr, "REMOTE HOST IDENTIFICATION HAS CHANGED") ||
		strings.Contains(e.Stderr, "Permission denied (publickey")
}

// CloseMaster ends the multiplexed connection to t, if there is one: it
// was authenticated with a key that may no longer be valid there, or
// under a pin that no longer holds.
func (e Env) CloseMaster(t Target) {
	p := e.controlPath(t)
	if p == "" {
		return
	}
	if _, err := os.Stat(p); err != nil {
		return
	}
	exec.Command("ssh", "-o", "ControlPath="+p, "-O", "exit", t.User+"@"+t.Host).Run()
}

// CloseMasters ends every multiplexed connection to the server named
// name, under any pin and key: for a server removed, re-pinned or
// blocked.
func (e Env) CloseMasters(name string) {
	if e.ControlDir == "" {
		return
	}
	socks, _ := filepath.Glob(filepath.Join(e.ControlDir, name+"@*"))
	for _, p := range socks {
		if fi, err := os.Lstat(p); err != nil || fi.Mode()&os.ModeSocket == 0 {
			continue
		}
		// The destination is not used with -O exit; the socket decides.
		exec.Command("ssh", "-o", "ControlPath="+p, "-O", "exit", "cpm").Run()
		os.Remove(p)
	}
}

// Unreachable reports whether ssh could not reach the server at all (it
// is down or the network is): waiting helps, unlike a refusal.
func (e *Error) Unreachable() bool {
	if e.Code != 255 || e.Blocking() {
		return false
	}
	for _, s := range []string{"Connection refused", "Connection timed out", "timed out", "No route to host",
		"Network is unreachable", "Could not resolve hostname", "Connection closed by", "Connection reset"} {
		if strings.Contains(e.Stderr, s) {
			return true
		}
	}
	return false
}

// Promoted reports whether the server was promoted to a main of its own.
func (e *Error) Promoted() bool { return strings.Contains(e.Stderr, PromotedTag) }

// KeyRefused reports whether the server refused cpm's key. A neighbour
// does that until its operator approves this node: waiting, not broken.
func (e *Error) KeyRefused() bool {
	return strings.Contains(e.Stderr, "Permission denied (publickey")
}

// Run runs a command on t and returns its standard output.
func (e Env) Run(ctx context.Context, t Target, command string) ([]byte, error) {
	return e.RunInput(ctx, t, command, nil)
}

// Command is the ssh command that runs command on t, for a caller that
// streams its input and output itself.
func (e Env) Command(ctx context.Context, t Target, command string) *exec.Cmd {
	args := append(e.SSHArgs(t), t.User+"@"+t.Host, Fence(t, command))
	return exec.CommandContext(ctx, "ssh", args...)
}

// RunInput runs a command on t with stdin as its input.
func (e Env) RunInput(ctx context.Context, t Target, command string, stdin io.Reader) ([]byte, error) {
	args := append(e.SSHArgs(t), t.User+"@"+t.Host, Fence(t, command))
	cmd := exec.CommandContext(ctx, "ssh", args...)
	cmd.Stdin = stdin
	stdout, stderr := &capbuf.Buffer{Max: maxAnswer}, &capbuf.Buffer{Max: maxStderr, Quiet: true}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Run(); err != nil {
		if stdout.Over() {
			return nil, fmt.Errorf("ssh %s: the answer is over %d MiB", t.Name, maxAnswer>>20)
		}
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		return stdout.Bytes(), &Error{Op: "ssh " + t.Name, Code: code, Stderr: stderr.String()}
	}
	return stdout.Bytes(), nil
}

// What one remote command may print, so that a server that lies (or a
// replica grown huge) cannot make this node hold more than this: a
// listing of a million object files is about 80 MiB.
const (
	maxAnswer = 256 << 20
	maxStderr = 64 << 10
)
