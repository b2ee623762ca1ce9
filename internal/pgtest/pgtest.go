// Package pgtest runs a throwaway PostgreSQL server for tests: initdb
// into a temporary directory (as an unprivileged user when the tests run
// as root, since postgres refuses root), listening on 127.0.0.1 at a port
// chosen at run time and on a unix socket in that directory, stopped and
// removed by Stop. Each test gets a database of its own. A test process
// that dies before Stop (killed by go test's -timeout, or by hand) still
// takes its server down: a watchdog outside it stops the server once it
// is gone.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"cpm/internal/shellquote"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// Server is one running PostgreSQL.
type Server struct {
	dir      string // data, socket and log, removed by Stop
	bin      string
	port     int
	password string
	runAs    *user.User // nil: the current user
	next     atomic.Int64
	watchdog *os.Process
}

// Bin finds Debian's PostgreSQL programs (initdb is not on PATH there):
// the newest /usr/lib/postgresql/*/bin, else the directory of initdb on
// PATH.
func Bin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("pgtest: PostgreSQL is not installed (initdb not found; make deps installs it)")
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// Start initialises and starts a server; the caller must Stop it.
func Start() (*Server, error) {
	bin, err := Bin()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "cpm-pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir, bin: bin, password: randomHex()}
	if err := s.init(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.watch(); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// watch starts the watchdog: a shell in a session of its own (so that a
// signal to the test's process group does not reach it) that waits for
// this process to end, then stops the server and removes its files.
// Postgres is no child of ours that would die with us.
func (s *Server) watch() error {
	var stop []string
	for _, a := range s.command("pg_ctl", "-D", s.data(), "-m", "immediate", "-w", "stop").Args {
		stop = append(stop, shellquote.Always(a))
	}
	script := fmt.Sprintf("while kill -0 %d 2>/dev/null; do sleep 1; done; %s >/dev/null 2>&1; rm -rf %s",
		os.Getpid(), strings.Join(stop, " "), shellquote.Always(s.dir))
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("pgtest: start the watchdog: %w", err)
	}
	s.watchdog = cmd.Process
	go cmd.Wait() // reaped when Stop kills it
	return nil
}

func randomHex() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// init runs initdb as an unprivileged user when we are root.
func (s *Server) init() error {
	if os.Geteuid() == 0 {
		u, err := user.Lookup("nobody")
		if err != nil {
			return fmt.Errorf("pgtest: running as root needs the user nobody: %w", err)
		}
		s.runAs = u
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(s.dir, uid, gid); err != nil {
			return err
		}
	}
	pwfile := filepath.Join(s.dir, "pw")
	if err := os.WriteFile(pwfile, []byte(s.password+"\n"), 0o600); err != nil {
		return err
	}
	if err := s.chown(pwfile); err != nil {
		return err
	}
	out, err := s.command("initdb", "-D", s.data(), "-U", "cpm", "--pwfile", pwfile,
		"--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--locale=C").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: initdb: %v: %s", err, out)
	}
	return os.Remove(pwfile)
}

func (s *Server) chown(path string) error {
	if s.runAs == nil {
		return nil
	}
	uid, _ := strconv.Atoi(s.runAs.Uid)
	gid, _ := strconv.Atoi(s.runAs.Gid)
	return os.Chown(path, uid, gid)
}

func (s *Server) data() string { return filepath.Join(s.dir, "data") }

// command runs one of PostgreSQL's programs as the server's user.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	prog := filepath.Join(s.bin, name)
	if s.runAs == nil {
		return exec.Command(prog, args...)
	}
	return exec.Command("runuser", append([]string{"-u", s.runAs.Username, "--", prog}, args...)...)
}

func (s *Server) start() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	s.port = port
	// Durability is not under test: fsync off keeps the suite fast.
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s -c fsync=off -c full_page_writes=off -c max_connections=200", port, s.dir)
	out, err := s.command("pg_ctl", "-D", s.data(), "-l", filepath.Join(s.dir, "log"), "-w", "-t", "60", "-o", opts, "start").CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		return fmt.Errorf("pgtest: pg_ctl start: %v: %s %s", err, out, log)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Stop stops the server and removes its files.
func (s *Server) Stop() {
	if s.watchdog != nil {
		s.watchdog.Kill()
	}
	s.command("pg_ctl", "-D", s.data(), "-m", "immediate", "-w", "stop").Run()
	os.RemoveAll(s.dir)
}

// URL is the address of database db, with the password.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://cpm:%s@127.0.0.1:%d/%s?sslmode=disable", s.password, s.port, db)
}

// Password is the superuser's password, for tests that check it never
// shows.
func (s *Server) Password() string { return s.password }

// CreateDatabase creates a fresh, empty database and returns its URL.
func (s *Server) CreateDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("t%d_%s", s.next.Add(1), randomHex()[:6])
	db, err := sql.Open("pgx", s.URL("postgres"))
	if err != nil {
		return "", err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("pgtest: create database: %w", err)
	}
	return s.URL(name), nil
}

// Database is CreateDatabase for a test; it fails the test on error.
func (s *Server) Database(t testing.TB) string {
	t.Helper()
	u, err := s.CreateDatabase(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// Main runs a package's tests with a server started for them, and stops
// it afterwards; it returns the exit code for os.Exit. The server is
// handed to setup before the tests run.
func Main(m *testing.M, setup func(*Server)) int {
	s, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Stop()
	setup(s)
	return m.Run()
}
