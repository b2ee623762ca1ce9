package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"cpm/internal/names"
	"cpm/internal/remote"
	"cpm/internal/replstream"
	"cpm/internal/repos"
)

// The fast path of SendPack. After a write into a replica node, this
// node remembers the refs it left there; the next write then needs no
// negotiation: the ref updates from those refs to the new snapshot and
// one pack of what the new tips reach and the old ones do not go to
// peer.ApplyPack on the replica, which checks every old value and the
// fingerprint before it records the generation: over a long-lived
// replication session (session.go) when the serving process keeps them,
// or one ssh session to `cpm-peer receive-pack --pack`. A session that
// fails as a session (it broke, would not start) is retried at once
// over the one-shot ssh; any other failure (the replica moved meanwhile,
// a worker's sync changed its refs, an object gone here) forgets what
// was remembered and SendPack falls back to git send-pack, which
// negotiates.

// sentKey names what was left on target name for repo.
func sentKey(repo names.RepoPath, name string) string { return repo.String() + "\x00" + name }

// lastSent is the refs this node last left on the target named name,
// if it remembers them.
func (s *Syncer) lastSent(repo names.RepoPath, name string) ([]string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	refs, ok := s.sent[sentKey(repo, name)]
	return refs, ok
}

// remember notes refs as left on the target named name; nil forgets.
func (s *Syncer) remember(repo names.RepoPath, name string, refs []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sent == nil {
		s.sent = map[string][]string{}
	}
	if refs == nil {
		delete(s.sent, sentKey(repo, name))
		return
	}
	s.sent[sentKey(repo, name)] = refs
}

// RefDiff is what turns the ref lines ("OBJECTID NAME") from into to.
func RefDiff(from, to []string) []RefUpdate {
	old, now := refMap(from), refMap(to)
	zero := ""
	for _, id := range now {
		zero = strings.Repeat("0", len(id))
		break
	}
	for _, id := range old {
		zero = strings.Repeat("0", len(id))
		break
	}
	var out []RefUpdate
	for _, l := range to {
		id, name, _ := strings.Cut(l, " ")
		if was, ok := old[name]; !ok {
			out = append(out, RefUpdate{Old: zero, New: id, Name: name})
		} else if was != id {
			out = append(out, RefUpdate{Old: was, New: id, Name: name})
		}
	}
	for _, l := range from {
		id, name, _ := strings.Cut(l, " ")
		if _, ok := now[name]; !ok {
			out = append(out, RefUpdate{Old: id, New: zero, Name: name})
		}
	}
	return out
}

func refMap(lines []string) map[string]string {
	m := make(map[string]string, len(lines))
	for _, l := range lines {
		id, name, _ := strings.Cut(l, " ")
		m[name] = id
	}
	return m
}

// packRevs is pack-objects' input: the new tips, less everything the
// replica's refs (from) reach.
func packRevs(from []string, updates []RefUpdate) string {
	var b strings.Builder
	for _, u := range updates {
		if strings.Trim(u.New, "0") != "" {
			b.WriteString(u.New + "\n")
		}
	}
	for _, l := range from {
		id, _, _ := strings.Cut(l, " ")
		b.WriteString("^" + id + "\n")
	}
	return b.String()
}

// applyPack writes snap into the replica on t, which holds from, as
// generation g under epoch: over a replication session when one is at
// hand (session.go), else, or when the session fails, over a one-shot
// ssh session. It says which way the write went (ViaSession, ViaPack),
// and why a session failed, if one did.
func (s *Syncer) applyPack(ctx context.Context, t remote.Target, repo names.RepoPath, dir string, from []string, snap Snapshot, epoch, g int64) (via string, sessionErr, err error) {
	updates := RefDiff(from, snap.Refs)
	fp := Fingerprint(snap.Refs)
	if s.Sessions != nil {
		req := replstream.Request{Repo: repo.String(), Epoch: epoch, Generation: g, Fingerprint: fp}
		serr := withPack(ctx, t, dir, from, updates, func(body io.Reader) error {
			return s.Sessions.Apply(ctx, t, req, body)
		})
		if !errors.Is(serr, ErrSession) || ctx.Err() != nil {
			return ViaSession, nil, serr
		}
		sessionErr = serr
	}
	receive := fmt.Sprintf("cpm-peer receive-pack --pack %d %d %s '%s.git'", epoch, g, fp, repo)
	err = withPack(ctx, t, dir, from, updates, func(body io.Reader) error {
		ssh := s.Remote.Command(ctx, t, receive)
		ssh.Stdin = body
		if err := runGroup(ssh, "receive-pack --pack on "+t.Name); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("receive-pack --pack on %s: %w", t.Name, ctx.Err())
			}
			return err
		}
		return nil
	})
	return ViaPack, sessionErr, err
}

// withPack runs send with the body of a fast-path write: the ref update
// lines, then one pack-objects pack of what the new tips reach and
// from does not, streamed while pack-objects runs.
func withPack(ctx context.Context, t remote.Target, dir string, from []string, updates []RefUpdate, send func(io.Reader) error) error {
	var header bytes.Buffer
	if err := WriteRefUpdates(&header, updates); err != nil {
		return err
	}
	pack := exec.CommandContext(ctx, "git", "pack-objects", "--stdout", "--revs", "--delta-base-offset", "-q")
	pack.Dir, pack.Env = dir, repos.Env(dir)
	pack.Stdin = strings.NewReader(packRevs(from, updates))
	var packErr bytes.Buffer
	pack.Stderr = &packErr
	// A pipe of our own: once the send ended, closing its read end stops
	// a pack-objects that nobody reads any more.
	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("pack for %s: %w", t.Name, err)
	}
	defer pr.Close()
	pack.Stdout = pw
	err = pack.Start()
	pw.Close()
	if err != nil {
		return fmt.Errorf("pack for %s: %w", t.Name, err)
	}
	sendErr := send(io.MultiReader(&header, pr))
	pr.Close()
	// A pack cut short is refused by the replica's git; one that failed
	// after it was whole is not trusted either.
	if err := pack.Wait(); err != nil && sendErr == nil {
		return fmt.Errorf("pack for %s: %w: %s", t.Name, err, strings.TrimSpace(packErr.String()))
	}
	return sendErr
}

// runGroup runs cmd in a process group of its own, so that a cancelled
// context stops every process it started, and returns its failure (op)
// with what it wrote.
func runGroup(cmd *exec.Cmd, op string) error {
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		return &remote.Error{Op: op, Code: code, Stderr: stderr.String()}
	}
	return nil
}
