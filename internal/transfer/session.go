package transfer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"cpm/internal/remote"
	"cpm/internal/replstream"
)

// Sessions are the long-lived replication sessions a node's serving
// process keeps to its replica nodes for synchronous writes: each one
// ssh process running `cpm-peer receive-pack --serve` there, over a
// connection of its own (not the workers' multiplexed one, whose
// sessions max_sessions counts), which takes one write after another
// (replstream). A write so costs no ssh process, channel or remote
// command start. A node gets up to maxSessionsPerNode of them, so that
// writes to different repositories do not queue behind each other;
// with all of them busy, a write takes the one-shot path. A session
// that breaks, overruns its write's deadline or sits idle too long is
// closed and a later write opens a new one.
type Sessions struct {
	remote remote.Env

	mu     sync.Mutex
	idle   map[string][]*session
	open   map[string]int
	retry  map[string]time.Time // no new session to that node before then
	closed bool
}

const (
	maxSessionsPerNode = 4
	// sessionIdle retires a session unused for that long, well before
	// the replica ends it (peer.SessionIdle).
	sessionIdle = 2 * time.Minute
	// sessionAge retires a session that old, before a server's limit
	// on a connection's life ends it under a write.
	sessionAge = time.Hour
	// sessionRetry is how long a node whose session ended before its
	// first answer (an older cpm, a node restarting) gets no new one.
	sessionRetry = 5 * time.Second
)

// ErrSession marks a failure of the session itself, not the replica's
// refusal: the write may be tried again over a one-shot session.
var ErrSession = errors.New("replication session")

// NewSessions keeps sessions made with env's key and pins.
func NewSessions(env remote.Env) *Sessions {
	env.ControlDir = ""
	return &Sessions{remote: env, idle: map[string][]*session{}, open: map[string]int{}, retry: map[string]time.Time{}}
}

// session is one running cpm-peer receive-pack --serve.
type session struct {
	cmd      *exec.Cmd
	in       io.WriteCloser
	w        *bufio.Writer
	r        *bufio.Reader
	exited   chan struct{}
	stderr   *firstWords
	born     time.Time
	used     time.Time
	answered bool
}

// poolKey is one pool per node, address, pinned host key and key.
func poolKey(t remote.Target) string {
	return fmt.Sprintf("%s\x00%s@%s:%d\x00%s\x00%t", t.Name, t.User, t.Host, t.Port, t.HostKey, t.UseNext)
}

// Apply writes req and its body over a session to t and returns the
// replica's answer: nil once it committed the write. A failure of the
// session (none at hand, broken, ctx ended) wraps ErrSession.
func (p *Sessions) Apply(ctx context.Context, t remote.Target, req replstream.Request, body io.Reader) error {
	key := poolKey(t)
	s, err := p.take(key, t)
	if err != nil {
		return fmt.Errorf("%w to %s: %v", ErrSession, t.Name, err)
	}
	stop := context.AfterFunc(ctx, s.kill)
	ans, err := s.do(req, body)
	if !stop() {
		err = fmt.Errorf("%w to %s: %w", ErrSession, t.Name, context.Cause(ctx))
	}
	if err != nil {
		p.drop(key, s)
		return err
	}
	s.answered, s.used = true, time.Now()
	p.put(key, s)
	if ans.Error != "" {
		return &remote.Error{Op: "replica write on " + t.Name, Code: 1, Stderr: ans.Error}
	}
	return nil
}

// do sends one request and reads its answer.
func (s *session) do(req replstream.Request, body io.Reader) (replstream.Answer, error) {
	var ans replstream.Answer
	err := replstream.WriteJSON(s.w, replstream.KindRequest, req)
	if err == nil {
		_, err = io.Copy(replstream.Writer{W: s.w}, body)
	}
	if err == nil {
		err = replstream.Writer{W: s.w}.End()
	}
	if err == nil {
		err = s.w.Flush()
	}
	var f replstream.Frame
	if err == nil {
		f, err = replstream.ReadFrame(s.r)
	}
	if err == nil {
		err = replstream.DecodeJSON(f, replstream.KindAnswer, &ans)
	}
	if err != nil {
		return ans, fmt.Errorf("%w: %v%s", ErrSession, err, s.stderr.suffix())
	}
	return ans, nil
}

// take returns an idle session to t or starts a new one.
func (p *Sessions) take(key string, t remote.Target) (*session, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errors.New("closed")
	}
	for len(p.idle[key]) > 0 {
		l := p.idle[key]
		s := l[len(l)-1]
		p.idle[key] = l[:len(l)-1]
		if s.alive() {
			return s, nil
		}
		p.open[key]--
		s.kill()
	}
	if time.Now().Before(p.retry[key]) {
		return nil, errors.New("its last session ended before it answered")
	}
	if p.open[key] >= maxSessionsPerNode {
		return nil, errors.New("every session busy")
	}
	s, err := p.start(t)
	if err != nil {
		return nil, err
	}
	p.open[key]++
	return s, nil
}

// put gives s back for the next write.
func (p *Sessions) put(key string, s *session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		p.open[key]--
		s.kill()
		return
	}
	p.idle[key] = append(p.idle[key], s)
}

// drop closes a session that failed; one that never answered holds new
// sessions to that node back for sessionRetry.
func (p *Sessions) drop(key string, s *session) {
	s.kill()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open[key]--
	if !s.answered {
		p.retry[key] = time.Now().Add(sessionRetry)
	}
}

// Close ends every session; sessions under a write end when it does.
func (p *Sessions) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for key, l := range p.idle {
		for _, s := range l {
			s.kill()
			p.open[key]--
		}
	}
	p.idle = map[string][]*session{}
}

// start runs cpm-peer receive-pack --serve on t.
func (p *Sessions) start(t remote.Target) (*session, error) {
	cmd := p.remote.Command(context.Background(), t, "cpm-peer receive-pack --serve")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s := &session{cmd: cmd, exited: make(chan struct{}), stderr: &firstWords{}, born: time.Now(), used: time.Now()}
	cmd.Stderr = s.stderr
	var err error
	if s.in, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start ssh: %w", err)
	}
	s.w, s.r = bufio.NewWriterSize(s.in, replstream.MaxChunk+5), bufio.NewReader(out)
	go func() { cmd.Wait(); close(s.exited) }()
	return s, nil
}

// alive says whether s may take another write.
func (s *session) alive() bool {
	select {
	case <-s.exited:
		return false
	default:
	}
	return time.Since(s.used) < sessionIdle && time.Since(s.born) < sessionAge
}

// kill ends the session's ssh at once (its stdout then ends too).
func (s *session) kill() {
	s.in.Close()
	select {
	case <-s.exited:
	default:
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	}
}

// firstWords keeps the first words ssh or the replica wrote on stderr,
// for the error of a session that failed.
type firstWords struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *firstWords) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := 2048 - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// suffix is ": WORDS" when there are any.
func (l *firstWords) suffix() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w := strings.TrimSpace(l.b.String()); w != "" {
		return ": " + w
	}
	return ""
}
