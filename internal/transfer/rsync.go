package transfer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"

	"cpm/internal/remote"
)

// excluded never travel: git's quarantine and temporary files, locks,
// hooks and config (each side owns its own).
var excluded = []string{"incoming-*", "tmp_*", "*.lock", ".rsync-partial"}

// indexFiles name the object files that make others visible: pack
// indexes, reverse indexes and bitmaps, the multi-pack index, and the
// commit-graph. They travel after the data they describe, so that a
// reader of a replica never finds an index whose pack is not there yet.
var indexFiles = []string{"*.idx", "*.bitmap", "*.rev", "multi-pack-index", "commit-graph", "commit-graph-chain", "commit-graphs"}

// isIndexFile reports whether the object file named name is one of them.
func isIndexFile(name string) bool {
	for _, pat := range indexFiles {
		if ok, _ := filepath.Match(pat, name); ok {
			return true
		}
	}
	return strings.HasPrefix(name, "multi-pack-index-") || strings.HasPrefix(name, "graph-")
}

// objectPasses are rsync's filters for the two passes over objects/:
// data first, then the index files too.
func objectPasses() [][]string {
	first := append(excludes(), "--exclude=*.keep")
	for _, pat := range indexFiles {
		first = append(first, "--exclude="+pat)
	}
	first = append(first, "--exclude=multi-pack-index-*")
	return [][]string{first, append(excludes(), "--exclude=*.keep")}
}

func excludes() []string {
	var a []string
	for _, e := range excluded {
		a = append(a, "--exclude="+e)
	}
	return a
}

var (
	statsRe    = regexp.MustCompile(`(?m)^Total bytes (?:sent|received): ([\d,.]+)|^Number of regular files transferred: ([\d,.]+)`)
	examinedRe = regexp.MustCompile(`(?m)^Total file size: ([\d,.]+)`)
	// An --itemize-changes line: YXcstpoguax, a space, the path.
	itemizeRe = regexp.MustCompile(`(?m)^([<>ch.*][fdLDS][.+?cstpoguaxn]{9}) (.+)$`)
)

// rsyncArgs runs rsync with cpm's options, then tail (filters and paths).
func (s *Syncer) rsyncArgs(ctx context.Context, t remote.Target, tail []string) (Result, error) {
	args := []string{"-rlpt", "--partial-dir=.rsync-partial", "--stats", "--timeout=300", "-e", s.Remote.RsyncShell(t)}
	if !t.Peer {
		args = append(args, "--rsync-path="+remote.Fence(t, "rsync"))
	}
	if t.BWLimit > 0 {
		args = append(args, "--bwlimit="+strconv.Itoa(t.BWLimit))
	}
	if t.Compress > 0 {
		args = append(args, "--compress", "--compress-level="+strconv.Itoa(t.Compress))
	}
	if s.Progress != nil {
		args = append(args, "--info=progress2")
	}
	args = append(args, tail...)
	cmd := exec.CommandContext(ctx, "rsync", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if s.Progress != nil {
		// The bar reads rsync's progress lines; rsync's own output
		// (statistics, warnings) is never shown.
		cmd.Stdout = io.MultiWriter(&stdout, s.Progress.Run())
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// What rsync did is read even when it failed: a batch counts what
	// went through for the repositories that did not fail.
	if err := cmd.Run(); err != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		return parseRsyncOutput(stdout.String()), &remote.Error{Op: "rsync to " + t.Name, Code: code, Stderr: stderr.String()}
	}
	return parseRsyncOutput(stdout.String()), nil
}

// parseRsyncOutput reads rsync's --stats and --itemize-changes lines.
func parseRsyncOutput(stdout string) Result {
	var r Result
	number := func(s string) int64 {
		n, _ := strconv.ParseInt(strings.NewReplacer(",", "", ".", "").Replace(s), 10, 64)
		return n
	}
	for _, m := range statsRe.FindAllStringSubmatch(stdout, -1) {
		if m[1] != "" {
			r.Bytes += number(m[1]) // both directions: the bytes on the wire
		} else {
			r.Files = number(m[2])
		}
	}
	if m := examinedRe.FindStringSubmatch(stdout); m != nil {
		r.Examined = number(m[1])
	}
	for _, m := range itemizeRe.FindAllStringSubmatch(stdout, -1) {
		r.Changes = append(r.Changes, m[1]+" "+m[2])
	}
	return r
}
