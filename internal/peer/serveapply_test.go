package peer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"cpm/internal/replstream"
	"cpm/internal/transfer"
)

// session is the primary's end of a ServeApply running in a goroutine.
type session struct {
	w    *io.PipeWriter
	r    *bufio.Reader
	done chan error
}

func openSession(r *Receiver, origin Origin) *session {
	return openSessionUntil(context.Background(), r, origin)
}

// openSessionUntil opens a session that ends between writes once
// between ends.
func openSessionUntil(between context.Context, r *Receiver, origin Origin) *session {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	s := &session{w: inW, r: bufio.NewReader(outR), done: make(chan error, 1)}
	go func() {
		err := r.ServeApply(context.Background(), between, origin, inR, outW, func(Applied) {})
		outW.CloseWithError(io.EOF)
		inR.Close()
		s.done <- err
	}()
	return s
}

// write sends one request and its body, and reads the answer.
func (s *session) write(t *testing.T, req replstream.Request, body []byte) (replstream.Answer, error) {
	t.Helper()
	var buf bytes.Buffer
	replstream.WriteJSON(&buf, replstream.KindRequest, req)
	replstream.Writer{W: &buf}.Write(body)
	replstream.Writer{W: &buf}.End()
	var ans replstream.Answer
	if _, err := s.w.Write(buf.Bytes()); err != nil {
		return ans, err
	}
	f, err := replstream.ReadFrame(s.r)
	if err != nil {
		return ans, err
	}
	return ans, replstream.DecodeJSON(f, replstream.KindAnswer, &ans)
}

// ended waits for the session's end and returns its error.
func (s *session) ended(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.done:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("the session did not end")
		return nil
	}
}

// A replication session applies one write after another, each checked
// as a one-shot ApplyPack is; a write refused is answered and the
// session goes on; a malformed or oversized frame, or a body that
// stalls past the write's bound, ends the session (an error, no panic)
// with nothing recorded; and only a node of the cluster may open one.
func TestServeApply(t *testing.T) {
	ctx := context.Background()
	rs := nodeCluster(t)
	st := rs["n1"].Store
	n1, _ := st.NodeByName(ctx, "n1")
	if err := st.RenewLease(ctx, n1.ID, time.Minute); err != nil {
		t.Fatal(err)
	}
	replica, err := rs["n2"].Disk.Create(ctx, "acme", "Web", "")
	if err != nil {
		t.Fatal(err)
	}
	rs["n2"].WriteTimeout = time.Second
	src := t.TempDir()
	gitIn(t, src, "", "init", "-q", "--bare")
	tree := gitIn(t, src, "", "mktree")
	a := gitIn(t, src, "", "commit-tree", "-m", "a", tree)
	b := gitIn(t, src, "", "commit-tree", "-m", "b", "-p", a, tree)
	c := gitIn(t, src, "", "commit-tree", "-m", "c", "-p", b, tree)
	zero := strings.Repeat("0", 40)
	held := func() int64 {
		p, err := st.Placement(ctx, "n2", "acme", "web")
		if err != nil {
			t.Fatal(err)
		}
		return p.Local
	}
	next := func() int64 {
		if err := st.MarkDirty(ctx, "acme", "web"); err != nil {
			t.Fatal(err)
		}
		r, _ := st.Repo(ctx, "acme", "web")
		g, _ := st.RepoGeneration(ctx, r.ID)
		return g
	}
	body := func(old, new string, revs string) []byte {
		var in bytes.Buffer
		transfer.WriteRefUpdates(&in, []transfer.RefUpdate{{Old: old, New: new, Name: "refs/heads/main"}})
		in.Write(packOf(t, src, revs, "--revs"))
		return in.Bytes()
	}
	req := func(gen int64, tip string) replstream.Request {
		return replstream.Request{Repo: "acme/web", Generation: gen, Fingerprint: transfer.Fingerprint([]string{tip + " refs/heads/main"})}
	}
	primary := Origin{Name: "n1", Node: true}

	s := openSession(rs["n2"], primary)
	g := next()
	if ans, err := s.write(t, req(g, a), body(zero, a, a+"\n")); err != nil || ans.Error != "" {
		t.Fatalf("the first write: %v %q", err, ans.Error)
	}
	if held() != g {
		t.Fatalf("after the first write: generation %d, want %d", held(), g)
	}
	if ans, err := s.write(t, req(next(), b), body(b, b, b+"\n^"+a+"\n")); err != nil || !strings.Contains(ans.Error, "update refs") {
		t.Fatalf("a write from an old value the replica does not hold: %v %q", err, ans.Error)
	}
	g = next()
	if ans, err := s.write(t, req(g, b), body(a, b, b+"\n^"+a+"\n")); err != nil || ans.Error != "" {
		t.Fatalf("the write after a refused one: %v %q", err, ans.Error)
	}
	if got := gitIn(t, replica, "", "rev-parse", "refs/heads/main"); got != b || held() != g {
		t.Fatalf("after two writes in one session: main %s, generation %d", got, held())
	}
	s.w.Write([]byte{'Z', 0, 0, 0, 0})
	if err := s.ended(t); !errors.Is(err, replstream.ErrProtocol) {
		t.Errorf("a frame of an unknown kind: %v", err)
	}

	// An oversized frame inside a body: nothing of that write is kept.
	s = openSession(rs["n2"], primary)
	var buf bytes.Buffer
	replstream.WriteJSON(&buf, replstream.KindRequest, req(next(), c))
	buf.Write([]byte{replstream.KindData, 0x7f, 0xff, 0xff, 0xff})
	s.w.Write(buf.Bytes())
	io.Copy(io.Discard, s.r)
	if err := s.ended(t); err == nil {
		t.Error("an oversized data frame: the session went on")
	}
	// A body that stalls: the write ends at its bound, and so does the
	// session, with the repository's row free again.
	s = openSession(rs["n2"], primary)
	buf.Reset()
	replstream.WriteJSON(&buf, replstream.KindRequest, req(next(), c))
	replstream.Writer{W: &buf}.Write(body(b, c, c+"\n^"+b+"\n")[:50])
	s.w.Write(buf.Bytes())
	go io.Copy(io.Discard, s.r)
	if err := s.ended(t); err == nil {
		t.Error("a stalled body: the session went on")
	}
	if got := gitIn(t, replica, "", "rev-parse", "refs/heads/main"); got != b || held() != g {
		t.Fatalf("after the broken sessions: main %s, generation %d", got, held())
	}
	s = openSession(rs["n2"], primary)
	g = next()
	if ans, err := s.write(t, req(g, c), body(b, c, c+"\n^"+b+"\n")); err != nil || ans.Error != "" || held() != g {
		t.Fatalf("a new session after a stalled one: %v %q, generation %d", err, ans.Error, held())
	}
	s.w.Close()
	if err := s.ended(t); err != nil {
		t.Errorf("a session the primary closed between writes: %v", err)
	}
	stopping, stop := context.WithCancel(ctx)
	s = openSessionUntil(stopping, rs["n2"], primary)
	stop()
	if err := s.ended(t); err != nil {
		t.Errorf("a session of a server that shuts down: %v", err)
	}

	s = openSession(rs["n2"], Origin{Name: "n1"})
	if err := s.ended(t); err == nil || !strings.Contains(err.Error(), "for nodes of this cluster") {
		t.Errorf("a session from a neighbour: %v", err)
	}
}
