package testworld

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SSHD is a real OpenSSH sshd on a loopback port, sending every key
// through cpm-shell's forced command from `cpm-admin authorized-keys`.
type SSHD struct {
	w              *World
	cmd            *exec.Cmd
	Addr           string
	User           string
	KnownHosts     string
	AuthorizedKeys string
	log            *os.File
	exited         chan struct{}
	config         string
	// sessions are the connections StopListening left running; Stop
	// ends them.
	sessions []int
}

// SSHDPath is where Debian installs sshd.
const SSHDPath = "/usr/sbin/sshd"

// StartSSHD starts sshd for the current user, with authorized_keys from
// cpm-admin authorized-keys. It skips the test when sshd is not installed
// (make test installs it).
func (w *World) StartSSHD() *SSHD {
	w.T.Helper()
	return w.startSSHD("sshd", "")
}

// StartSSHDWith is StartSSHD with extra sshd_config lines.
func (w *World) StartSSHDWith(extraConfig ...string) *SSHD {
	w.T.Helper()
	return w.startSSHD("sshd", "", extraConfig...)
}

// StartBackupSSHD starts a plain sshd, standing for a backup server, that
// lets cpm's replication key in (no forced command: rsync and git run
// there as on any server).
func (w *World) StartBackupSSHD(name string, extraConfig ...string) *SSHD {
	w.T.Helper()
	pub, err := os.ReadFile(filepath.Join(w.DataDir, "id_ed25519_replication.pub"))
	if err != nil {
		w.T.Fatal(err)
	}
	return w.startSSHD(name, string(pub), extraConfig...)
}

// PathWithout makes a directory of links to every command in /usr/bin
// except the ones named, for a PATH on which they are missing.
func (w *World) PathWithout(missing ...string) string {
	w.T.Helper()
	dir := filepath.Join(w.Root, "path-without-"+strings.Join(missing, "-"))
	os.MkdirAll(dir, 0o755)
	skip := map[string]bool{}
	for _, m := range missing {
		skip[m] = true
	}
	entries, err := os.ReadDir("/usr/bin")
	if err != nil {
		w.T.Fatal(err)
	}
	for _, e := range entries {
		if !skip[e.Name()] {
			os.Symlink(filepath.Join("/usr/bin", e.Name()), filepath.Join(dir, e.Name()))
		}
	}
	return dir
}

// HostKey is the sshd's public host key line.
func (d *SSHD) HostKey() string {
	b, _ := os.ReadFile(filepath.Join(filepath.Dir(d.AuthorizedKeys), "ssh_host_ed25519_key.pub"))
	return strings.TrimSpace(string(b))
}

// Port is the sshd's port.
func (d *SSHD) Port() string {
	_, p, _ := net.SplitHostPort(d.Addr)
	return p
}

// Stop stops sshd (a backup going down).
// Like a machine going down, its open connections go with it: ssh
// masters that cpm keeps open must not outlive it.
func (d *SSHD) Stop() {
	select {
	case <-d.exited:
		d.endSessions()
		return
	default:
	}
	kids := descendants(d.cmd.Process.Pid)
	d.cmd.Process.Kill()
	for _, pid := range kids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	<-d.exited
	d.endSessions()
}

// StopListening stops the listening sshd only, as `systemctl stop ssh`
// does (Debian's unit has KillMode=process): connections already open
// keep running, but nobody can connect any more. Stop (or the test's
// end) ends them.
func (d *SSHD) StopListening() {
	select {
	case <-d.exited:
		return
	default:
	}
	d.sessions = append(d.sessions, descendants(d.cmd.Process.Pid)...)
	d.cmd.Process.Kill()
	<-d.exited
}

func (d *SSHD) endSessions() {
	for _, pid := range d.sessions {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	d.sessions = nil
}

// descendants lists the processes below pid, from /proc.
func descendants(pid int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		if f := strings.Fields(rest); len(f) > 1 {
			if ppid, err := strconv.Atoi(f[1]); err == nil {
				children[ppid] = append(children[ppid], child)
			}
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

func (w *World) startSSHD(name, authorized string, extraConfig ...string) *SSHD {
	w.T.Helper()
	return w.startSSHDWith(sshdOptions{name: name, authorized: authorized, extra: extraConfig})
}

// sshdOptions say how to start an sshd: its folder's name under the
// world's root, authorized_keys ("": from cpm-admin authorized-keys), a
// host key ("": a new one), the address to listen on ("": 127.0.0.1 on
// a free port) and extra sshd_config lines.
type sshdOptions struct {
	name, authorized, hostKey, addr string
	extra                           []string
}

func (w *World) startSSHDWith(o sshdOptions) *SSHD {
	w.T.Helper()
	name, authorized, extraConfig := o.name, o.authorized, o.extra
	if _, err := os.Stat(SSHDPath); err != nil {
		w.T.Skip("sshd not installed; run make test as root to install openssh-server")
	}
	u, err := user.Current()
	if err != nil {
		w.T.Fatal(err)
	}
	if u.Uid == "0" {
		// Debian's sshd wants its privilege separation directory.
		os.MkdirAll("/run/sshd", 0o755)
	}
	dir := filepath.Join(w.Root, name)
	os.MkdirAll(dir, 0o700)
	hostKey := o.hostKey
	if hostKey == "" {
		hostKey = filepath.Join(dir, "ssh_host_ed25519_key")
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hostKey).CombinedOutput(); err != nil {
			w.T.Fatalf("ssh-keygen: %v %s", err, out)
		}
	}
	d := &SSHD{w: w, User: u.Username, AuthorizedKeys: filepath.Join(dir, "authorized_keys")}
	if authorized == "" {
		d.Refresh()
	} else if err := os.WriteFile(d.AuthorizedKeys, []byte(authorized), 0o600); err != nil {
		w.T.Fatal(err)
	}
	d.Addr = o.addr
	if d.Addr == "" {
		d.Addr = net.JoinHostPort("127.0.0.1", freePort(w))
	}
	host, port, _ := net.SplitHostPort(d.Addr)
	cfg := filepath.Join(dir, "sshd_config")
	body := sshdConfig(dir, host, port, hostKey, d.AuthorizedKeys, u.Username, authorized, extraConfig)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		w.T.Fatal(err)
	}
	d.log, _ = os.Create(filepath.Join(dir, "sshd.log"))
	d.config = cfg
	d.start()
	w.T.Cleanup(func() {
		d.Stop()
		d.log.Close()
		if w.T.Failed() {
			b, _ := os.ReadFile(d.log.Name())
			w.T.Logf("sshd log:\n%s", b)
		}
	})
	d.waitListening()
	pub, err := publicKeyFile(hostKey)
	if err != nil {
		w.T.Fatal(err)
	}
	d.KnownHosts = filepath.Join(dir, "known_hosts")
	os.WriteFile(d.KnownHosts, []byte(fmt.Sprintf("[%s]:%s %s\n", host, port, pub)), 0o600)
	return d
}

func (d *SSHD) start() {
	d.exited = make(chan struct{})
	d.cmd = exec.Command(SSHDPath, "-D", "-e", "-f", d.config)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		d.w.T.Fatal(err)
	}
	exited := d.exited
	go func() { d.cmd.Wait(); close(exited) }()
}

// Restart starts the stopped sshd again on the same port with the same key.
func (d *SSHD) Restart() {
	d.w.T.Helper()
	d.start()
	d.waitListening()
}

func (d *SSHD) waitListening() {
	w := d.w
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", d.Addr); err == nil {
			c.Close()
			break
		}
		select {
		case <-d.exited:
			b, _ := os.ReadFile(d.log.Name())
			w.T.Fatalf("sshd exited:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			w.T.Fatal("sshd did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Refresh rewrites authorized_keys from cpm-admin authorized-keys, as an
// operator's cron job or key-change hook would.
func (d *SSHD) Refresh() {
	d.w.T.Helper()
	out := d.w.MustAdmin("authorized-keys")
	if err := os.WriteFile(d.AuthorizedKeys, []byte(out), 0o600); err != nil {
		d.w.T.Fatal(err)
	}
}

// Client returns a client for key against this sshd.
func (d *SSHD) Client(key Key) *Client {
	return &Client{w: d.w, Key: key, user: d.User, addr: d.Addr, knownHosts: d.KnownHosts}
}

// freePort asks the kernel for a free loopback port.
func freePort(w *World) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		w.T.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func permitRoot(authorized string) string {
	if authorized == "" {
		return "PermitRootLogin forced-commands-only"
	}
	return "PermitRootLogin prohibit-password"
}

// sshdConfig is a test sshd's configuration: loopback only, public keys
// only, for the one user, with extra lines (SetEnv lines merged: sshd
// honours only the first).
func sshdConfig(dir, host, port, hostKey, authorizedKeys, username, authorized string, extraConfig []string) string {
	// sshd honours only the first SetEnv line: merge them.
	// A home of its own: the shell sshd runs commands with reads no rc file
	// of the developer's (a pyenv init there costs a lock per session).
	home := filepath.Join(dir, "home")
	os.MkdirAll(home, 0o700)
	setenv := "SetEnv GORACE=atexit_sleep_ms=0 HOME=" + home
	var rest []string
	for _, l := range extraConfig {
		if v, ok := strings.CutPrefix(l, "SetEnv "); ok {
			setenv += " " + v
		} else {
			rest = append(rest, l)
		}
	}
	return strings.Join([]string{
		"Port " + port,
		"ListenAddress " + host,
		"HostKey " + hostKey,
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"AuthorizedKeysFile " + authorizedKeys,
		"StrictModes no",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		permitRoot(authorized),
		"AllowUsers " + username,
		"AcceptEnv GIT_PROTOCOL",
		// Race-built test binaries would pause a second at every exit.
		setenv,
		"LogLevel VERBOSE",
	}, "\n") + "\n" + strings.Join(rest, "\n") + "\n"
}
