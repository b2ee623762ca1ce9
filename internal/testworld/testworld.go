// Package testworld builds throwaway cpm installations for integration
// tests: the real binaries built once per test process, a fresh data
// directory, and real ssh keys, so that a test reads like what a user does.
package testworld

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Bin holds the paths of the built binaries.
type Bin struct {
	Dir   string
	Admin string
	Shell string
	Hook  string

	database func(testing.TB) string // nil: SQLite
}

// Build compiles every command of the module into a temporary directory.
// Call it from TestMain and Cleanup when the tests are done.
func Build() (Bin, error) {
	root, err := moduleRoot()
	if err != nil {
		return Bin{}, err
	}
	dir, err := os.MkdirTemp("", "cpm-bin-")
	if err != nil {
		return Bin{}, err
	}
	build := func(race bool, pkgs ...string) error {
		args := []string{"build", "-o", dir + string(os.PathSeparator)}
		if race {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, pkgs...)...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %v\n%s", err, out)
		}
		return nil
	}
	// Under the race detector the long-running binaries are built with it
	// too. cpm-hook is not: it runs once per hook with the clean environment
	// the gateway gives git, where the race runtime's one-second exit pause
	// cannot be turned off, and it has no concurrency to check.
	if err := build(raceEnabled, "./cmd/cpm-admin", "./cmd/cpm-shell"); err != nil {
		os.RemoveAll(dir)
		return Bin{}, err
	}
	if err := build(false, "./cmd/cpm-hook"); err != nil {
		os.RemoveAll(dir)
		return Bin{}, err
	}
	return Bin{
		Dir:   dir,
		Admin: filepath.Join(dir, "cpm-admin"),
		Shell: filepath.Join(dir, "cpm-shell"),
		Hook:  filepath.Join(dir, "cpm-hook"),
	}, nil
}

// OnDatabase returns b with every new world initialised on a database
// that database makes for each test (a PostgreSQL URL; see pgtest), so
// that the same end-to-end tests run on PostgreSQL.
func (b Bin) OnDatabase(database func(testing.TB) string) Bin {
	b.database = database
	return b
}

// Cleanup removes the built binaries.
func (b Bin) Cleanup() { os.RemoveAll(b.Dir) }

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the cpm module")
	}
	return filepath.Dir(mod), nil
}

// World is one cpm installation: a data dir and the binaries to drive it.
type World struct {
	T       testing.TB
	Bin     Bin
	Root    string // temporary directory holding everything below
	DataDir string
	// Database is the PostgreSQL URL the world was initialised on, or ""
	// for SQLite.
	Database string
}

// New makes an initialised, empty world.
func New(t testing.TB, bin Bin) *World {
	t.Helper()
	root := t.TempDir()
	w := &World{T: t, Bin: bin, Root: root, DataDir: filepath.Join(root, "data")}
	if bin.database != nil {
		// init records the URL in the data directory: every later
		// command of this world (admin, serve, hooks) finds it there.
		w.Database = bin.database(t)
		w.MustAdmin("init", "--database", w.Database)
		return w
	}
	w.MustAdmin("init")
	return w
}

// Result is what a command did.
type Result struct {
	Code   int
	Stdout string
	Stderr string
}

// Admin runs cpm-admin with --data-dir and args; stdin may be "".
func (w *World) Admin(stdin string, args ...string) Result {
	w.T.Helper()
	return w.run(w.Bin.Admin, stdin, append([]string{"--data-dir", w.DataDir}, args...)...)
}

// MustAdmin runs cpm-admin and fails the test unless it succeeds.
func (w *World) MustAdmin(args ...string) string {
	w.T.Helper()
	r := w.Admin("", args...)
	if r.Code != 0 {
		w.T.Fatalf("cpm-admin %s: exit %d: %s", strings.Join(args, " "), r.Code, r.Stderr)
	}
	return r.Stdout
}

func (w *World) run(bin, stdin string, args ...string) Result {
	w.T.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = Env()
	cmd.Dir = w.Root
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		w.T.Fatalf("run %s: %v", bin, err)
	}
	return Result{Code: code, Stdout: stdout.String(), Stderr: stderr.String()}
}

// Env is the environment the tests run binaries with: the caller's,
// without CPM_* settings, and without the race runtime's default one-second
// sleep at exit, which would make every command of a -race run slow.
func Env() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CPM_") && !strings.HasPrefix(kv, "GORACE=") {
			env = append(env, kv)
		}
	}
	return append(env, "GORACE=atexit_sleep_ms=0 halt_on_error=1")
}

// Key is an ssh key pair on disk.
type Key struct {
	Path        string // private key
	PubPath     string
	Public      string // the .pub line
	Fingerprint string
}

// NewKey makes an ed25519 key pair with ssh-keygen.
func (w *World) NewKey(name string) Key {
	return w.NewKeyType(name, "ed25519", 0)
}

// NewKeyType makes a key pair of the given type and size with ssh-keygen.
func (w *World) NewKeyType(name, typ string, bits int) Key {
	w.T.Helper()
	dir := filepath.Join(w.Root, "keys")
	os.MkdirAll(dir, 0o700)
	p := filepath.Join(dir, name)
	args := []string{"-q", "-t", typ, "-N", "", "-C", name + "@test", "-f", p}
	if bits > 0 {
		args = append(args, "-b", fmt.Sprint(bits))
	}
	if out, err := exec.Command("ssh-keygen", args...).CombinedOutput(); err != nil {
		w.T.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, err := os.ReadFile(p + ".pub")
	if err != nil {
		w.T.Fatal(err)
	}
	out, err := exec.Command("ssh-keygen", "-lf", p+".pub").Output()
	if err != nil {
		w.T.Fatal(err)
	}
	return Key{Path: p, PubPath: p + ".pub", Public: strings.TrimSpace(string(pub)), Fingerprint: strings.Fields(string(out))[1]}
}

// RepoDir is where ORG/REPO lives on disk.
func (w *World) RepoDir(org, repo string) string {
	return filepath.Join(w.DataDir, "repos", org, repo+".git")
}
