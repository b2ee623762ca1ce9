package transfer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"cpm/internal/names"
	"cpm/internal/remote"
	"cpm/internal/shellquote"
)

// Bulk state: one ssh command per backup and reconciliation pass, instead
// of one per replica, reports the size of every object file and the
// content of every ref file under the backup's path. The answer is the
// target's word, so it is parsed strictly: a line that is not of the
// expected form ends the answer (the caller then checks each replica on
// its own), a path that names no replica the target should hold is
// ignored and counted, never opened, and each replica's part is capped.

// ReplicaState is what a backup's answer says of one replica.
type ReplicaState struct {
	// Fingerprint is that of the replica's refs (limited to the target's
	// ref patterns), computed as RemoteFingerprint would.
	Fingerprint string
	// ObjectsOK: every object file (and LFS object) of the local
	// repository is there with its size.
	ObjectsOK bool
	// Unjudged: the answer cannot settle this replica (a symbolic or
	// malformed ref file, a part over the cap, a repository that cannot
	// be read here); check it on its own.
	Unjudged bool
}

// BulkStats describes one bulk answer.
type BulkStats struct {
	Bytes   int64  // the answer's size
	Ignored int    // lines naming no replica the target should hold
	FirstIg string // the first of them, for the log (not yet sanitised)
}

// MaxStatePerReplica caps one replica's part of a bulk answer; past it,
// the replica is checked on its own.
const MaxStatePerReplica = 8 << 20

// bulkEnd closes a complete answer: without it, the answer was cut.
const bulkEnd = "#end"

// bulkStateCommand lists, under backup t's path, "SIZE ./ORG/REPO.git/objects/…"
// for every object file (wc -c reads the size from the inode), then each
// ref file as "R PATH" followed by its lines as "L LINE". POSIX tools
// only, as for the free-space check.
func bulkStateCommand(t remote.Target) string {
	top := `-path ./.cpm -prune -o -type f`
	return "cd " + shellquote.Quote(t.Path) + " 2>/dev/null || { echo '" + bulkEnd + "'; exit 0; }; LC_ALL=C; export LC_ALL; " +
		"find . " + top + ` \( -path './*/*.git/objects/*' -o -path './*/*.git/lfs/objects/*' \) -exec wc -c {} + || exit 1; ` +
		"echo '#refs'; " +
		"find . " + top + ` \( -path './*/*.git/HEAD' -o -path './*/*.git/packed-refs' -o -path './*/*.git/refs/*' \)` +
		` -exec awk 'FNR==1 {print "R " FILENAME} {print "L " $0}' {} + || exit 1; echo '` + bulkEnd + "'"
}

// BulkState asks backup t once for the state of every replica it holds,
// and judges those of repos against the local repositories. A repository
// missing from the result has no replica there at all.
func (s *Syncer) BulkState(ctx context.Context, t remote.Target, repos []names.RepoPath) (map[string]ReplicaState, BulkStats, error) {
	if t.Peer {
		return nil, BulkStats{}, errors.New("bulk state: only a backup answers it")
	}
	cmd := s.Remote.Command(ctx, t, bulkStateCommand(t))
	stderr := &strings.Builder{}
	cmd.Stderr = &limitWriter{w: stderr, n: 64 << 10}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, BulkStats{}, err
	}
	if err := cmd.Start(); err != nil {
		return nil, BulkStats{}, fmt.Errorf("bulk state of %s: %w", t.Name, err)
	}
	b := newBulkReader(s, t, repos)
	perr := b.read(out)
	if perr != nil {
		// Stop the command rather than read the rest of a bad answer.
		cmd.Process.Kill()
		io.Copy(io.Discard, out)
	}
	if err := cmd.Wait(); err != nil && perr == nil {
		code := -1
		var ee interface{ ExitCode() int }
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		}
		return nil, b.stats, &remote.Error{Op: "bulk state of " + t.Name, Code: code, Stderr: stderr.String()}
	}
	if perr != nil {
		return nil, b.stats, fmt.Errorf("bulk state of %s: %w", t.Name, perr)
	}
	return b.result(), b.stats, nil
}

// limitWriter keeps the first n bytes written to it.
type limitWriter struct {
	w io.Writer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

// splitReplicaPath cuts "./ORG/REPO.git/REST" into the repository's name
// and REST; ok is false for anything else.
func splitReplicaPath(p string) (repo, rest string, ok bool) {
	p, ok = strings.CutPrefix(p, "./")
	if !ok {
		return "", "", false
	}
	parts := strings.SplitN(p, "/", 3)
	if len(parts) != 3 || !strings.HasSuffix(parts[1], ".git") {
		return "", "", false
	}
	rp, err := names.ParseRepoPath(parts[0] + "/" + parts[1])
	if err != nil {
		return "", "", false
	}
	for _, seg := range strings.Split(parts[2], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", "", false
		}
	}
	return rp.String(), parts[2], true
}

// isObjectID reports whether s is a full hexadecimal object id (SHA-1 or
// SHA-256), as git writes them.
func isObjectID(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// readLine reads one line of at most max bytes, without its newline.
func readLine(r *bufio.Reader, max int) (string, error) {
	line, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) || len(line) > max {
		return "", errors.New("a line of the answer is too long")
	}
	if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
		return "", err
	}
	return strings.TrimSuffix(string(line), "\n"), nil
}
