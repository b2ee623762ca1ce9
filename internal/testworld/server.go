package testworld

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Server is a running `cpm-shell serve` on loopback ports chosen at run time.
type Server struct {
	w           *World
	cmd         *exec.Cmd
	SSHAddr     string
	GitAddr     string
	MetricsAddr string
	HTTPAddr    string // "" unless started with --http-listen
	KnownHosts  string // known_hosts pinning the server's host key

	mu      sync.Mutex
	log     strings.Builder
	exited  chan struct{} // closed when the process has exited
	exitErr error
}

// StartServer starts cpm-shell serve with extra flags and waits until it
// listens. The test stops it at cleanup.
func (w *World) StartServer(extra ...string) *Server {
	w.T.Helper()
	args := append([]string{"serve", "--data-dir", w.DataDir,
		"--listen", "127.0.0.1:0", "--git-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(w.Bin.Shell, args...)
	cmd.Env = Env()
	cmd.Dir = w.Root
	stderr, err := cmd.StderrPipe()
	if err != nil {
		w.T.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		w.T.Fatal(err)
	}
	s := &Server{w: w, cmd: cmd, exited: make(chan struct{})}
	ready := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.log.WriteString(line + "\n")
			s.mu.Unlock()
			var ev map[string]any
			if json.Unmarshal([]byte(line), &ev) == nil && ev["message"] == "cpm-shell serving" {
				ready <- ev
			}
		}
	}()
	go func() { s.exitErr = cmd.Wait(); close(s.exited) }()
	w.T.Cleanup(func() {
		s.Stop()
		if w.T.Failed() {
			w.T.Logf("cpm-shell log:\n%s", s.Log())
		}
	})
	select {
	case ev := <-ready:
		s.SSHAddr, _ = ev["ssh"].(string)
		s.GitAddr, _ = ev["git"].(string)
		s.MetricsAddr, _ = ev["metrics"].(string)
		s.HTTPAddr, _ = ev["http"].(string)
	case <-s.exited:
		w.T.Fatalf("cpm-shell exited: %v\n%s", s.exitErr, s.Log())
	case <-time.After(30 * time.Second):
		w.T.Fatalf("cpm-shell did not start\n%s", s.Log())
	}
	pub, err := PublicHostKey(w.DataDir)
	if err != nil {
		w.T.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(s.SSHAddr)
	s.KnownHosts = filepath.Join(w.Root, "known_hosts")
	line := fmt.Sprintf("[%s]:%s %s\n", host, port, pub)
	if err := os.WriteFile(s.KnownHosts, []byte(line), 0o600); err != nil {
		w.T.Fatal(err)
	}
	return s
}

// Log is what the server has logged so far.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Pid is the server's process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Signal sends sig to the server.
func (s *Server) Signal(sig os.Signal) { s.cmd.Process.Signal(sig) }

// Wait waits up to timeout for the server to exit and reports whether it
// did, with its exit error.
func (s *Server) Wait(timeout time.Duration) (bool, error) {
	select {
	case <-s.exited:
		return true, s.exitErr
	case <-time.After(timeout):
		return false, nil
	}
}

// Exited reports whether the server's process has ended.
func (s *Server) Exited() bool {
	select {
	case <-s.exited:
		return true
	default:
		return false
	}
}

// Stop terminates the server (SIGTERM, then SIGKILL after 15 s).
func (s *Server) Stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	if ok, _ := s.Wait(15 * time.Second); !ok {
		s.cmd.Process.Kill()
		s.Wait(5 * time.Second)
	}
}

// Port is the ssh port.
func (s *Server) Port() string {
	_, port, _ := net.SplitHostPort(s.SSHAddr)
	return port
}

// URL is the ssh clone URL of ORG/REPO.
func (s *Server) URL(path string) string {
	return "ssh://git@" + s.SSHAddr + "/" + path + ".git"
}

// Client runs git and ssh as the owner of key against a server, with the
// server's host key pinned (StrictHostKeyChecking=yes).
type Client struct {
	w          *World
	Key        Key
	user       string
	addr       string
	knownHosts string
}

// Client returns a client for key.
func (s *Server) Client(key Key) *Client {
	return &Client{w: s.w, Key: key, user: "git", addr: s.SSHAddr, knownHosts: s.KnownHosts}
}

// ClientAt is a client for key of the ssh server at addr, whose host key
// knownHosts pins (a server the test did not start itself).
func (w *World) ClientAt(addr, knownHosts string, key Key) *Client {
	return &Client{w: w, Key: key, user: "git", addr: addr, knownHosts: knownHosts}
}

// URL is the ssh clone URL of ORG/REPO on the client's server.
func (c *Client) URL(path string) string {
	return "ssh://" + c.user + "@" + c.addr + "/" + path + ".git"
}

// Via is the client connecting to addr instead (a load balancer in front
// of the server), with the server's host key pinned there too.
func (c *Client) Via(addr string) *Client {
	c.w.T.Helper()
	body, err := os.ReadFile(c.knownHosts)
	if err != nil {
		c.w.T.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(body)), "\n") {
		if f := strings.Fields(l); len(f) >= 3 {
			lines = append(lines, "["+host+"]:"+port+" "+f[1]+" "+f[2])
		}
	}
	kh := filepath.Join(c.w.Root, "known_hosts-via-"+port)
	if err := os.WriteFile(kh, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		c.w.T.Fatal(err)
	}
	v := *c
	v.addr, v.knownHosts = addr, kh
	return &v
}

// SSHArgs are the ssh options every client command uses.
func (c *Client) SSHArgs() []string {
	return []string{"-i", c.Key.Path, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile=" + c.knownHosts,
		"-o", "LogLevel=ERROR", "-o", "ConnectTimeout=10"}
}

func (c *Client) env() []string {
	return c.envWith("ssh " + strings.Join(c.SSHArgs(), " "))
}

func (c *Client) envWith(sshCommand string) []string {
	return append(Env(),
		"GIT_SSH_COMMAND="+sshCommand,
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com",
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0")
}

// Git runs git in dir ("" for the world's root).
func (c *Client) Git(dir string, args ...string) Result {
	c.w.T.Helper()
	if dir == "" {
		dir = c.w.Root
	}
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = c.env()
	return c.w.exec(cmd, "")
}

// GitVia runs git in dir with another ssh client: sshCommand is what
// GIT_SSH_COMMAND becomes, env is added to the environment.
func (c *Client) GitVia(sshCommand string, env []string, dir string, args ...string) Result {
	c.w.T.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(c.envWith(sshCommand), env...)
	return c.w.exec(cmd, "")
}

// MustGit runs git and fails the test unless it succeeds.
func (c *Client) MustGit(dir string, args ...string) string {
	c.w.T.Helper()
	r := c.Git(dir, args...)
	if r.Code != 0 {
		c.w.T.Fatalf("git %s: exit %d\n%s", strings.Join(args, " "), r.Code, r.Stderr)
	}
	return strings.TrimSpace(r.Stdout)
}

// SSH runs ssh to the server with extra options and a remote command.
func (c *Client) SSH(opts []string, command ...string) Result {
	c.w.T.Helper()
	return c.SSHInput("", opts, command...)
}

// SSHInput is SSH with stdin read from the string stdin.
func (c *Client) SSHInput(stdin string, opts []string, command ...string) Result {
	c.w.T.Helper()
	host, port, _ := net.SplitHostPort(c.addr)
	args := append(append(c.SSHArgs(), "-p", port), opts...)
	args = append(args, c.user+"@"+host)
	args = append(args, command...)
	cmd := exec.Command("ssh", args...)
	cmd.Env = c.env()
	return c.w.exec(cmd, stdin)
}

// Clone clones ORG/REPO into a new directory and returns it.
func (c *Client) Clone(path string) (string, Result) {
	c.w.T.Helper()
	dir, err := os.MkdirTemp(c.w.Root, "clone-")
	if err != nil {
		c.w.T.Fatal(err)
	}
	return dir, c.Git("", "clone", "-q", c.URL(path), dir)
}

// Commit makes a commit with one changed file in the work tree dir.
func (c *Client) Commit(dir, msg string) string {
	c.w.T.Helper()
	os.WriteFile(filepath.Join(dir, "file.txt"), []byte(msg+"\n"), 0o644)
	c.MustGit(dir, "add", "file.txt")
	c.MustGit(dir, "commit", "-q", "-m", msg)
	return c.MustGit(dir, "rev-parse", "HEAD")
}

func (w *World) exec(cmd *exec.Cmd, stdin string) Result {
	w.T.Helper()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Stdin = strings.NewReader(stdin)
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		w.T.Fatalf("run %s: %v", cmd.Path, err)
	}
	return Result{Code: code, Stdout: stdout.String(), Stderr: stderr.String()}
}

// Exec runs cmd with stdin and reports what it did; only a failure to
// start it fails the test.
func (w *World) Exec(cmd *exec.Cmd, stdin string) Result {
	w.T.Helper()
	return w.exec(cmd, stdin)
}
