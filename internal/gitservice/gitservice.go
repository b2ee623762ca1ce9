// Package gitservice runs git's server programs (upload-pack, receive-pack,
// upload-archive) for one client, the same way for every transport (the
// ssh gateway, git://): a clean environment, GIT_PROTOCOL only in its valid
// form, its own process group killed with everything it started when the
// client goes away, and its exit status; and it counts the client's bytes.
package gitservice

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"cpm/internal/repos"
)

// protocolRe matches what git sends in GIT_PROTOCOL, such as "version=2";
// anything else is dropped, never passed to git.
var protocolRe = regexp.MustCompile(`^[A-Za-z0-9._=-]+(:[A-Za-z0-9._=-]+)*$`)

// ValidProtocol reports whether v may be passed to git as GIT_PROTOCOL.
func ValidProtocol(v string) bool { return len(v) <= 128 && protocolRe.MatchString(v) }

// ProtocolVersion is the highest version=N a valid GIT_PROTOCOL names
// (0 when none), as git's servers read it: smart HTTP's advertisement
// begins with a "# service=" line for versions 0 and 1 only.
func ProtocolVersion(v string) int {
	if !ValidProtocol(v) {
		return 0
	}
	best := 0
	for _, kv := range strings.Split(v, ":") {
		if n, err := strconv.Atoi(strings.TrimPrefix(kv, "version=")); strings.HasPrefix(kv, "version=") && err == nil && n > best {
			best = n
		}
	}
	return best
}

// Service is one of git's server programs.
type Service string

const (
	UploadPack    Service = "upload-pack"
	ReceivePack   Service = "receive-pack"
	UploadArchive Service = "upload-archive"
)

// Request is one run of a service on a repository.
type Request struct {
	Service  Service
	Dir      string   // the repository, canonical and absolute
	Protocol string   // the client's GIT_PROTOCOL; dropped unless valid
	Env      []string // added to git's clean environment (the hooks' facts)
	Args     []string // more options, before the directory
	// Replication is a node serving its own copy to another node of its
	// cluster: cpm's own refs (refs/cpm/, such as diverged writes kept
	// from an old primary) travel too. Every user-facing run hides them.
	Replication bool
	// Stateless is smart HTTP's mode of upload-pack and receive-pack
	// ("" for a connection that lasts the whole exchange, ssh and git://).
	Stateless Stateless
}

// Stateless is how one HTTP request runs a service: each request is a
// process of its own, which answers and exits.
type Stateless string

const (
	// Advertise answers GET info/refs: the refs and capabilities only.
	Advertise Stateless = "advertise"
	// RPC answers a POST: one round of negotiation, or the pack.
	RPC Stateless = "rpc"
)

// Valid reports whether m is a known mode ("" included).
func (m Stateless) Valid() bool { return m == "" || m == Advertise || m == RPC }

// args are the service's options for the mode. --advertise-refs is the
// spelling git 2.39 knows (--http-backend-info-refs came later as an alias).
func (m Stateless) args() []string {
	switch m {
	case Advertise:
		return []string{"--stateless-rpc", "--advertise-refs"}
	case RPC:
		return []string{"--stateless-rpc"}
	}
	return nil
}

// HiddenRefs is the ref namespace that is cpm's own: never listed to a
// user, never pushed by one (receive-pack refuses a hidden ref).
const HiddenRefs = "refs/cpm/"

// Command is the git command for r, not started.
func Command(ctx context.Context, r Request) *exec.Cmd {
	var args []string
	if !r.Replication {
		args = append(args, "-c", "transfer.hideRefs="+HiddenRefs)
	}
	args = append(args, string(r.Service))
	if r.Service == UploadPack {
		// --strict: serve exactly this directory, never DIR/.git.
		args = append(args, "--strict")
	}
	args = append(args, r.Stateless.args()...)
	args = append(append(args, r.Args...), r.Dir)
	c := exec.CommandContext(ctx, "git", args...)
	c.Dir = r.Dir
	c.Env = append(repos.Env(r.Dir), r.Env...)
	if r.Protocol != "" && ValidProtocol(r.Protocol) {
		c.Env = append(c.Env, "GIT_PROTOCOL="+r.Protocol)
	}
	return c
}

// Streams are the client's side of a run.
type Streams struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Finish keeps the command running when the client goes away: what it
	// still writes is discarded instead of breaking its pipe. receive-pack
	// needs it: a client may hang up once it has read the push report,
	// while post-receive is still running (go-git does).
	Finish bool
}

// Outcome is how a run ended.
type Outcome struct {
	Status int // the exit status the client gets
	// Err is set when the command could not run or was killed, as opposed
	// to one that ran and exited non-zero.
	Err error
}

// Run runs c, made with exec.CommandContext(ctx, …) as Command makes it,
// with the client's streams until it exits or ctx ends, when c and
// everything it started (pack-objects, hooks) are killed as a group.
func Run(ctx context.Context, c *exec.Cmd, s Streams) Outcome {
	c.Stdout, c.Stderr = s.Stdout, s.Stderr
	if c.Stderr == nil {
		c.Stderr = io.Discard
	}
	if s.Finish && c.Stdout != nil {
		c.Stdout, c.Stderr = &hangupWriter{w: c.Stdout}, &hangupWriter{w: c.Stderr}
	}
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error { return syscall.Kill(-c.Process.Pid, syscall.SIGKILL) }
	c.WaitDelay = 5 * time.Second
	// Stdin is fed by hand: an ssh client closes its side only after it has
	// seen the exit status, so Wait must not wait for that copy to end.
	stdin, err := c.StdinPipe()
	if err == nil {
		err = c.Start()
	}
	if err == nil {
		go func() {
			if s.Stdin != nil {
				io.Copy(stdin, s.Stdin)
			}
			stdin.Close()
		}()
		err = c.Wait()
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return Outcome{}
	case errors.As(err, &ee) && ee.ExitCode() >= 0:
		return Outcome{Status: ee.ExitCode()}
	}
	return Outcome{Status: 1, Err: err}
}

// hangupWriter writes to the client until a write fails (the client went
// away), then discards everything: os/exec would otherwise close the
// command's pipe, and git dies of SIGPIPE at its next write.
type hangupWriter struct {
	w    io.Writer
	gone atomic.Bool
}

func (h *hangupWriter) Write(p []byte) (int, error) {
	if !h.gone.Load() {
		if _, err := h.w.Write(p); err != nil {
			h.gone.Store(true)
		}
	}
	return len(p), nil
}

// CountingReader counts the bytes read through it; atomically, since a
// client's stdin is copied by a goroutine that may outlive the run.
type CountingReader struct {
	R io.Reader
	n atomic.Int64
}

func (c *CountingReader) Read(p []byte) (int, error) {
	if c.R == nil {
		return 0, io.EOF
	}
	n, err := c.R.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// N is the bytes read so far.
func (c *CountingReader) N() int64 { return c.n.Load() }

// CountingWriter counts the bytes written through it.
type CountingWriter struct {
	W io.Writer
	n atomic.Int64
}

func (c *CountingWriter) Write(p []byte) (int, error) {
	n, err := c.W.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// N is the bytes written so far.
func (c *CountingWriter) N() int64 { return c.n.Load() }
