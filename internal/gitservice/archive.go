package gitservice

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
)

// maxArchiveArgs bounds the arguments a client of upload-archive may
// send before its flush (git's own client sends a handful).
const maxArchiveArgs = 64

// GuardArchive reads the arguments a `git archive --remote` client sends
// (pkt-lines "argument ARG" up to a flush) and refuses one that names a
// ref under HiddenRefs in the repository at dir, as git would resolve it:
// upload-archive ignores transfer.hideRefs, and refs/cpm/ is cpm's own
// (diverged writes of an old primary, never published). It returns the
// stream to give git: what it read, then the rest.
func GuardArchive(ctx context.Context, in io.Reader, dir string) (io.Reader, error) {
	var seen bytes.Buffer
	r := io.TeeReader(in, &seen)
	for range maxArchiveArgs + 1 {
		payload, flush, err := readPkt(r)
		if err != nil {
			return nil, fmt.Errorf("archive arguments: %w", err)
		}
		if flush {
			return io.MultiReader(&seen, in), nil
		}
		arg, ok := strings.CutPrefix(strings.TrimSuffix(string(payload), "\n"), "argument ")
		if !ok {
			return nil, errors.New("archive arguments: not an argument line")
		}
		if hidden(ctx, dir, arg) {
			return nil, fmt.Errorf("no such ref: %s", strings.SplitN(arg, ":", 2)[0])
		}
	}
	return nil, errors.New("archive arguments: too many")
}

// hidden reports whether arg (a tree-ish, perhaps with :path) resolves
// to a ref under HiddenRefs.
func hidden(ctx context.Context, dir, arg string) bool {
	if strings.HasPrefix(arg, "-") {
		return false // an option; its value, if separate, is checked on its own
	}
	name, _, _ := strings.Cut(arg, ":")
	// git tries refs/NAME first, so a name that starts with cpm/ reaches
	// cpm's refs whatever else exists (refs/heads/cpm/… is still
	// reachable by its full name).
	if strings.Contains(name, HiddenRefs) || strings.HasPrefix(name, strings.TrimPrefix(HiddenRefs, "refs/")) {
		return true
	}
	// Those two forms are the only ways in (git resolves a name by
	// prefixing refs/, refs/tags/, refs/heads/, refs/remotes/); asking git
	// too catches what they might miss. Paths are arguments of their own,
	// which git may fail to resolve: those pass. name never starts with
	// "-" here, so it is no option of rev-parse.
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "--symbolic-full-name", name).Output()
	return err == nil && strings.HasPrefix(strings.TrimSpace(string(out)), HiddenRefs)
}

// readPkt reads one pkt-line: its payload, or flush for 0000.
func readPkt(r io.Reader) ([]byte, bool, error) {
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, false, err
	}
	n, err := strconv.ParseUint(string(head[:]), 16, 16)
	switch {
	case err != nil:
		return nil, false, fmt.Errorf("bad pkt-line length %q", head[:])
	case n == 0:
		return nil, true, nil
	case n < 4:
		return nil, false, fmt.Errorf("bad pkt-line length %d", n)
	}
	payload := make([]byte, n-4)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, false, err
	}
	return payload, false, nil
}
