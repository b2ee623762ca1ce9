package test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"cpm/internal/sshserver"
	"cpm/internal/testworld"
)

// wrongHostKey is a valid ed25519 public key that no test server holds.
const wrongHostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHFgrYyYzG4cp9bEoqCUd29pJTMhGH0wkvTFBF7wgsl6"

// soloServer is a running server with one org owner, acme/web seeded
// with a main branch, and the owner's OpenSSH client.
func soloServer(t *testing.T) (*testworld.World, *testworld.Server, *testworld.Client) {
	t.Helper()
	w := testworld.New(t, bin)
	k := w.NewKey("owner")
	w.MustAdmin("user", "add", "owner", "--key", k.PubPath)
	w.MustAdmin("org", "create", "acme", "--owner", "owner")
	w.MustAdmin("repo", "create", "acme/web")
	srv := w.StartServer()
	owner := srv.Client(k)
	dir, r := owner.Clone("acme/web")
	if r.Code != 0 {
		t.Fatalf("seed clone: %s", r.Stderr)
	}
	owner.Commit(dir, "seed")
	owner.MustGit(dir, "push", "-q", "origin", "HEAD:main")
	return w, srv, owner
}

func needCommand(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is not installed (make deps installs it): %v", name, err)
	}
	return p
}

// hostPub is the server's host key as "TYPE BASE64".
func hostPub(t *testing.T, w *testworld.World) string {
	t.Helper()
	pub, err := os.ReadFile(filepath.Join(w.DataDir, "ssh_host_ed25519_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(pub))
	return f[0] + " " + f[1]
}

// sshClient is a non-OpenSSH client: how git runs it, given the host key
// to pin, and its environment.
type sshClient struct {
	name    string
	command string // the binary that must be installed
	setup   func(t *testing.T, w *testworld.World, k testworld.Key, port, pin string) (sshCommand string, env []string)
}

var otherClients = []sshClient{
	{
		// dbclient reads dropbear's own key format and pins host keys in
		// $HOME/.ssh/known_hosts under the bare host name.
		name: "dropbear", command: "dbclient",
		setup: func(t *testing.T, w *testworld.World, k testworld.Key, port, pin string) (string, []string) {
			home := t.TempDir()
			os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
			os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), []byte("127.0.0.1 "+pin+"\n"), 0o600)
			dbKey := filepath.Join(home, "key.db")
			if out, err := exec.Command("dropbearconvert", "openssh", "dropbear", k.Path, dbKey).CombinedOutput(); err != nil {
				t.Fatalf("dropbearconvert: %v: %s", err, out)
			}
			return "dbclient -i " + dbKey, []string{"HOME=" + home, "GIT_SSH_VARIANT=ssh"}
		},
	},
	{
		// plink takes the pin as a fingerprint; git knows plink's flags.
		name: "putty", command: "plink",
		setup: func(t *testing.T, w *testworld.World, k testworld.Key, port, pin string) (string, []string) {
			ppk := filepath.Join(t.TempDir(), "key.ppk")
			if out, err := exec.Command("puttygen", k.Path, "-O", "private", "-o", ppk).CombinedOutput(); err != nil {
				t.Fatalf("puttygen: %v: %s", err, out)
			}
			fp := fingerprintOf(t, pin)
			return "plink -batch -i " + ppk + " -hostkey " + fp, []string{"GIT_SSH_VARIANT=plink"}
		},
	},
}

func fingerprintOf(t *testing.T, pub string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "k.pub")
	os.WriteFile(f, []byte(pub+"\n"), 0o644)
	out, err := exec.Command("ssh-keygen", "-lf", f).Output()
	if err != nil {
		t.Fatalf("ssh-keygen -lf: %v", err)
	}
	return strings.Fields(string(out))[1]
}

// TestOtherClients: dropbear's and PuTTY's clients clone and push through
// the embedded server with its host key pinned, and refuse it under a
// wrong pin (so the pin is really checked).
func TestOtherClients(t *testing.T) {
	w, srv, owner := soloServer(t)
	_, port, _ := net.SplitHostPort(srv.SSHAddr)
	url := fmt.Sprintf("ssh://git@127.0.0.1:%s/acme/web.git", port)
	for _, c := range otherClients {
		t.Run(c.name, func(t *testing.T) {
			needCommand(t, c.command)
			sshCmd, env := c.setup(t, w, owner.Key, port, hostPub(t, w))
			dir := t.TempDir()
			if r := owner.GitVia(sshCmd, env, dir, "clone", "-q", url, "work"); r.Code != 0 {
				t.Fatalf("clone with %s: %s", c.name, r.Stderr)
			}
			work := filepath.Join(dir, "work")
			os.WriteFile(filepath.Join(work, c.name+".txt"), []byte(c.name+"\n"), 0o644)
			owner.MustGit(work, "add", ".")
			owner.MustGit(work, "commit", "-q", "-m", "from "+c.name)
			head := owner.MustGit(work, "rev-parse", "HEAD")
			if r := owner.GitVia(sshCmd, env, work, "push", "-q", "origin", "HEAD:main"); r.Code != 0 {
				t.Fatalf("push with %s: %s", c.name, r.Stderr)
			}
			if got := gitIn(t, w.RepoDir("acme", "web"), "rev-parse", "main"); got != head {
				t.Fatalf("main on the server is %s, pushed %s", got, head)
			}

			badCmd, badEnv := c.setup(t, w, owner.Key, port, wrongHostKey)
			if r := owner.GitVia(badCmd, badEnv, dir, "clone", "-q", url, "refused"); r.Code == 0 {
				t.Fatalf("%s cloned under a wrong host key pin", c.name)
			}
		})
	}
	t.Run("libgit2", func(t *testing.T) {
		py := "/usr/bin/python3" // Debian's python3-pygit2 is there, not in another python3 on PATH
		if out, err := exec.Command(py, "-c", "import pygit2").CombinedOutput(); err != nil {
			t.Fatalf("python3-pygit2 is not installed (make deps installs it): %v: %s", err, out)
		}
		script, _ := filepath.Abs("testdata/libgit2_client.py")
		run := func(pin, dest string) testworld.Result {
			home := t.TempDir()
			os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
			os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), []byte("[127.0.0.1]:"+port+" "+pin+"\n"), 0o600)
			cmd := exec.Command(py, script, url, owner.Key.Path, owner.Key.PubPath, dest)
			cmd.Env = append(testworld.Env(), "HOME="+home)
			return w.Exec(cmd, "")
		}
		r := run(hostPub(t, w), filepath.Join(t.TempDir(), "work"))
		if r.Code != 0 {
			t.Fatalf("libgit2 clone and push: %s", r.Stderr)
		}
		if got := gitIn(t, w.RepoDir("acme", "web"), "rev-parse", "main"); got != strings.TrimSpace(r.Stdout) {
			t.Fatalf("main on the server is %s, libgit2 pushed %q", got, r.Stdout)
		}
		if r := run(wrongHostKey, filepath.Join(t.TempDir(), "refused")); r.Code == 0 {
			t.Fatal("libgit2 cloned under a wrong host key pin")
		}
	})
}

// TestSSHAudit runs ssh-audit against the embedded server: no algorithm it
// offers may be rated a failure, and public keys are the only way in.
func TestSSHAudit(t *testing.T) {
	audit := needCommand(t, "ssh-audit")
	w, srv, owner := soloServer(t)
	host, port, _ := net.SplitHostPort(srv.SSHAddr)
	cmd := exec.Command(audit, "--no-colors", "-p", port, host)
	cmd.Env = testworld.Env()
	r := w.Exec(cmd, "")
	if !strings.Contains(r.Stdout, "(kex) curve25519-sha256") {
		t.Fatalf("ssh-audit did not read the server (exit %d):\n%s%s", r.Code, r.Stdout, r.Stderr)
	}
	for _, line := range strings.Split(r.Stdout, "\n") {
		if strings.Contains(line, "[fail]") {
			t.Errorf("ssh-audit: %s", strings.TrimSpace(line))
		}
	}
	for _, weak := range []string{"ecdh-sha2-nistp", "diffie-hellman-group14-sha1", "hmac-sha1", "ssh-rsa", "cbc"} {
		if strings.Contains(r.Stdout, weak) {
			t.Errorf("the server offers %s:\n%s", weak, r.Stdout)
		}
	}
	if t.Failed() {
		t.Logf("ssh-audit output:\n%s", r.Stdout)
	}

	// A client with no key learns which methods it could use.
	probe := owner.SSH([]string{"-v", "-o", "PubkeyAuthentication=no", "-o", "IdentityFile=/dev/null"}, "whoami")
	if probe.Code == 0 {
		t.Fatal("a client without a key got in")
	}
	var methods string
	for _, line := range strings.Split(probe.Stderr, "\n") {
		if _, after, ok := strings.Cut(line, "Authentications that can continue: "); ok {
			methods = strings.TrimSpace(after)
		}
	}
	if methods != "publickey" {
		t.Fatalf("advertised methods %q, want publickey only:\n%s", methods, probe.Stderr)
	}
}

// TestCipherChoice: OpenSSH, whose own order would take AES-CTR, gets
// AES-GCM (the cheaper cipher for the server); a client that asks for CTR
// only still gets in; Go's client logs in without waiting on the server;
// and a client that waits for the server's KEXINIT before sending its own
// gets it within a fraction of a second of its version line.
func TestCipherChoice(t *testing.T) {
	w, srv, owner := soloServer(t)
	cipher := func(opts ...string) string {
		r := owner.SSH(append([]string{"-v"}, opts...), "whoami")
		if r.Code != 0 {
			t.Fatalf("ssh %v: %s", opts, r.Stderr)
		}
		for _, line := range strings.Split(r.Stderr, "\n") {
			if _, after, ok := strings.Cut(line, "kex: server->client cipher: "); ok {
				return strings.Fields(after)[0]
			}
		}
		t.Fatalf("ssh -v printed no cipher:\n%s", r.Stderr)
		return ""
	}
	want := "chacha20-poly1305@openssh.com"
	if sshserver.HasAESHardware() {
		want = "aes128-gcm@openssh.com"
	}
	if got := cipher(); got != want {
		t.Errorf("OpenSSH's default choice: %s, want %s", got, want)
	}
	if got := cipher("-c", "aes256-ctr"); got != "aes256-ctr" {
		t.Errorf("a client offering only aes256-ctr got %s", got)
	}

	start := time.Now()
	gc, err := goClient(t, &company{w: w, srv: srv}, signer(t, owner.Key))
	if err != nil {
		t.Fatal(err)
	}
	sess, err := gc.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := sess.Output("whoami")
	gc.Close()
	if took := time.Since(start); err != nil || strings.TrimSpace(string(out)) != "owner" || took > 500*time.Millisecond {
		t.Errorf("x/crypto client: whoami %q, %v, after %s", out, err, took)
	}

	c, err := net.Dial("tcp", srv.SSHAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	start = time.Now()
	fmt.Fprint(c, "SSH-2.0-waiter\r\n")
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "SSH-2.0-cpm") {
		t.Fatalf("version line %q: %v", line, err)
	}
	var hdr [6]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		t.Fatalf("the server sent no KEXINIT to a client that waits for it: %v", err)
	}
	if hdr[5] != 20 {
		t.Fatalf("first packet is message %d, want KEXINIT (20)", hdr[5])
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("a client waiting for the server's KEXINIT got it after %s", took)
	}
}

func gitIn(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).Output()
	if err != nil {
		t.Fatalf("git %s in %s: %v", strings.Join(args, " "), dir, err)
	}
	return strings.TrimSpace(string(out))
}
