package testworld

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Push is one `git push` a PushLoop made.
type Push struct {
	Repo, Branch string
	Commit       string // what was pushed
	Start, End   time.Time
	OK           bool   // git exited 0: the push was acknowledged
	Stderr       string // the end of git's stderr
}

// PushLoop is clients pushing commits in a loop to repositories, each
// pusher to a branch of its own (refs/heads/pN), recording every push and
// whether git reported it successful. A pusher never pushes over a loss:
// each push names the commit it believes the branch holds
// (--force-with-lease), and when the branch holds something else it
// starts again from what the branch holds, so an acknowledged commit that
// the server lost stays lost and a check finds it.
type PushLoop struct {
	client  *Client
	pushers []*pusher
	timeout time.Duration

	mu     sync.Mutex
	pushes []Push
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// pusher is one goroutine's state: its work tree and what it believes
// the server's branch holds.
type pusher struct {
	repo, branch, dir string
	expect            string // the branch on the server, as far as we know ("": none)
	n                 int
	inFlight          atomic.Bool
}

// NewPushLoop prepares perRepo pushers for each of repos (ORG/REPO),
// pushing through client; Start runs them.
func NewPushLoop(client *Client, repos []string, perRepo int) *PushLoop {
	w := client.w
	w.T.Helper()
	l := &PushLoop{client: client, timeout: 60 * time.Second}
	for _, repo := range repos {
		for k := 0; k < perRepo; k++ {
			p := &pusher{repo: repo, branch: fmt.Sprintf("p%d", len(l.pushers)+1)}
			p.dir = filepath.Join(w.Root, "pushloop", p.branch)
			if out, err := exec.Command("git", "init", "-q", "-b", "work", p.dir).CombinedOutput(); err != nil {
				w.T.Fatalf("git init %s: %v %s", p.dir, err, out)
			}
			l.pushers = append(l.pushers, p)
		}
	}
	return l
}

// Start runs every pusher until Stop.
func (l *PushLoop) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	for _, p := range l.pushers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				l.round(ctx, p)
			}
		}()
	}
}

// Stop ends the pushers and waits for their pushes under way to end.
func (l *PushLoop) Stop() {
	if l.cancel != nil {
		l.cancel()
		l.wg.Wait()
		l.cancel = nil
	}
}

// Pushes is every push made so far.
func (l *PushLoop) Pushes() []Push {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Push(nil), l.pushes...)
}

// InFlight is how many pushes to repo are under way.
func (l *PushLoop) InFlight(repo string) int {
	n := 0
	for _, p := range l.pushers {
		if p.repo == repo && p.inFlight.Load() {
			n++
		}
	}
	return n
}

// round commits once and pushes; after a failed push it learns what the
// branch holds now.
func (l *PushLoop) round(ctx context.Context, p *pusher) {
	p.n++
	commit, err := l.commit(p)
	if err != nil {
		l.record(Push{Repo: p.repo, Branch: p.branch, Start: time.Now(), End: time.Now(), Stderr: err.Error()})
		sleep(ctx, time.Second)
		return
	}
	push := Push{Repo: p.repo, Branch: p.branch, Commit: commit, Start: time.Now()}
	p.inFlight.Store(true)
	r := l.git(ctx, p.dir, "push", "--porcelain", "--force-with-lease=refs/heads/"+p.branch+":"+p.expect,
		l.client.URL(p.repo), "HEAD:refs/heads/"+p.branch)
	p.inFlight.Store(false)
	push.End, push.OK, push.Stderr = time.Now(), r.Code == 0, tail(r.Stderr, 4000)
	if ctx.Err() != nil && !push.OK {
		return // stopped mid-push: neither acknowledged nor a failure to count
	}
	l.record(push)
	if push.OK {
		p.expect = commit
		return
	}
	sleep(ctx, 200*time.Millisecond)
	l.resync(ctx, p)
}

// resync asks the server what the branch holds and carries on from there:
// from our own later commit if a push that failed landed anyway, else from
// the server's commit (a lost acknowledged commit is not pushed again).
func (l *PushLoop) resync(ctx context.Context, p *pusher) {
	for ctx.Err() == nil {
		r := l.git(ctx, p.dir, "ls-remote", l.client.URL(p.repo), "refs/heads/"+p.branch)
		if r.Code != 0 {
			sleep(ctx, 500*time.Millisecond)
			continue
		}
		held := ""
		if f := strings.Fields(r.Stdout); len(f) > 0 {
			held = f[0]
		}
		if held == p.expect {
			return
		}
		if held != "" && l.descends(p, p.expect, held) && l.descends(p, held, "HEAD") {
			p.expect = held
			return
		}
		if l.restart(ctx, p, held) == nil {
			p.expect = held
			return
		}
		sleep(ctx, 500*time.Millisecond)
	}
}

// descends reports whether commit b contains a ("" is in everything).
func (l *PushLoop) descends(p *pusher, a, b string) bool {
	if a == "" {
		return true
	}
	return l.git(context.Background(), p.dir, "merge-base", "--is-ancestor", a, b).Code == 0
}

// restart moves the work tree to what the server holds: its commit, or a
// new history when the branch is gone.
func (l *PushLoop) restart(ctx context.Context, p *pusher, held string) error {
	if held == "" {
		if r := l.git(ctx, p.dir, "checkout", "-q", "--orphan", fmt.Sprintf("work%d", p.n)); r.Code != 0 {
			return fmt.Errorf("git checkout --orphan: %s", r.Stderr)
		}
		return nil
	}
	if r := l.git(ctx, p.dir, "fetch", "-q", l.client.URL(p.repo), "refs/heads/"+p.branch); r.Code != 0 {
		return fmt.Errorf("git fetch: %s", r.Stderr)
	}
	if r := l.git(ctx, p.dir, "reset", "-q", "--hard", held); r.Code != 0 {
		return fmt.Errorf("git reset: %s", r.Stderr)
	}
	return nil
}

// commit makes the pusher's next commit and returns its id.
func (l *PushLoop) commit(p *pusher) (string, error) {
	name := p.branch + ".txt"
	body := fmt.Sprintf("%s %d %d\n", p.branch, p.n, time.Now().UnixNano())
	if err := os.WriteFile(filepath.Join(p.dir, name), []byte(body), 0o644); err != nil {
		return "", err
	}
	ctx := context.Background()
	if r := l.git(ctx, p.dir, "add", name); r.Code != 0 {
		return "", fmt.Errorf("git add: %s", r.Stderr)
	}
	if r := l.git(ctx, p.dir, "commit", "-q", "-m", strings.TrimSpace(body)); r.Code != 0 {
		return "", fmt.Errorf("git commit: %s", r.Stderr)
	}
	r := l.git(ctx, p.dir, "rev-parse", "HEAD")
	if r.Code != 0 {
		return "", fmt.Errorf("git rev-parse: %s", r.Stderr)
	}
	return strings.TrimSpace(r.Stdout), nil
}

// git runs git as the loop's client, killed after the loop's timeout or
// when ctx ends. Unlike Client.Git it never touches the test's T, since
// it runs on the pushers' goroutines.
func (l *PushLoop) git(ctx context.Context, dir string, args ...string) Result {
	ctx, cancel := context.WithTimeout(ctx, l.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = l.client.env()
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := Result{Stdout: stdout.String(), Stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		res.Code = max(ee.ExitCode(), 1) // killed (-1) is a failure too
	} else if err != nil {
		res.Code, res.Stderr = 1, err.Error()
	}
	return res
}

func (l *PushLoop) record(p Push) {
	l.mu.Lock()
	l.pushes = append(l.pushes, p)
	l.mu.Unlock()
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
