package admin

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"cpm/internal/atomicfile"
	"cpm/internal/remote"
	"cpm/internal/store"
	"cpm/internal/transfer"
)

// A promoted backup is fenced from its old main twice over: a marker the
// main's every command and rsync checks first (remote.Fence), and the old
// main's key in authorized_keys replaced by one that can only print the
// same notice, so that even a main that never looks for the marker cannot
// write there.

// noticeUnsafe is what may not appear in the notice, which ends up inside
// a forced command and a shell's printf.
var noticeUnsafe = regexp.MustCompile(`[^A-Za-z0-9._:/@+-]`)

// promotionNotice says when and where a backup was promoted: "DATE by
// NODE", NODE being host:data-dir.
func promotionNotice(now time.Time, dataDir string) string {
	host, _ := os.Hostname()
	node := noticeUnsafe.ReplaceAllString(host+":"+dataDir, "_")
	return now.UTC().Format(time.RFC3339) + " by " + node
}

// writePromotedMarker leaves the notice at from/.cpm/promoted.
func writePromotedMarker(from, notice string) error {
	p := filepath.Join(from, remote.PromotedMarker)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("promoted marker: %w", err)
	}
	if err := atomicfile.Write(p, []byte(notice+"\n"), 0o644); err != nil {
		return fmt.Errorf("promoted marker: %w", err)
	}
	return nil
}

// selfServers are the entries of the origin's server list that stand for
// this backup: a backup whose path is the directory being promoted.
func selfServers(servers []store.Server, from string) []string {
	var self []string
	for _, s := range servers {
		if s.Role == store.Backup && filepath.Clean(s.Path) == from {
			self = append(self, s.Name)
		}
	}
	return self
}

// authorizedKeysOf is the authorized_keys file through which the old main
// reached from: path when given (relative to the home of from's owner,
// the backup account), or .ssh/authorized_keys there.
func authorizedKeysOf(from, path string) (string, error) {
	if path == "" {
		path = ".ssh/authorized_keys"
	}
	path = strings.TrimPrefix(path, "~/")
	if filepath.IsAbs(path) {
		return path, nil
	}
	fi, err := os.Stat(from)
	if err != nil {
		return "", err
	}
	var home string
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		u, err := user.LookupId(strconv.Itoa(int(st.Uid)))
		if err != nil {
			return "", fmt.Errorf("the owner of %s: %w", from, err)
		}
		home = u.HomeDir
	} else if home, err = os.UserHomeDir(); err != nil {
		return "", err
	}
	return filepath.Join(home, path), nil
}

// fenceOldMain replaces, in the authorized_keys file ak, every line with
// one of the keys in from/.cpm/origin-keys by a line that lets that key
// print the promotion notice and nothing else. It reports how many lines
// it replaced; the file keeps its owner and mode.
func fenceOldMain(from, ak, notice string) (int, error) {
	body, err := os.ReadFile(filepath.Join(from, transfer.SnapshotDir, transfer.OriginKeysName))
	if errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("the backup holds no origin keys (%s/%s); remove the old main's key from %s by hand", transfer.SnapshotDir, transfer.OriginKeysName, ak)
	} else if err != nil {
		return 0, err
	}
	origin := map[string]bool{}
	for _, l := range strings.Split(string(body), "\n") {
		if k, err := remote.ParseHostKey(l); err == nil {
			origin[k] = true
		}
	}
	fi, err := os.Stat(ak)
	if err != nil {
		return 0, fmt.Errorf("fence the old main: %w", err)
	}
	in, err := os.ReadFile(ak)
	if err != nil {
		return 0, fmt.Errorf("fence the old main: %w", err)
	}
	forced := `restrict,command="printf '` + remote.PromotedTag + ` %s\n' '` + notice + `' >&2; exit ` +
		strconv.Itoa(remote.PromotedExit) + `" `
	var out strings.Builder
	n := 0
	sc := bufio.NewScanner(strings.NewReader(string(in)))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if k, err := remote.ParseHostKey(line); err == nil && origin[k] {
			line = forced + k + " cpm-old-main-fenced"
			n++
		}
		out.WriteString(line + "\n")
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("fence the old main: %s: %w", ak, err)
	}
	if n == 0 {
		return 0, nil
	}
	uid, gid := -1, -1
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && os.Geteuid() == 0 {
		uid, gid = int(st.Uid), int(st.Gid)
	}
	if err := atomicfile.WriteOwned(ak, []byte(out.String()), fi.Mode().Perm(), uid, gid); err != nil {
		return 0, fmt.Errorf("fence the old main: %w", err)
	}
	return n, nil
}
