package transfer

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// RefUpdate moves one ref of a replica from Old to New (object IDs; all
// zeros: absent before, or deleted).
type RefUpdate struct {
	Old, New, Name string
}

// maxRefUpdates bounds what a node may make a replica read before the
// pack: more than any push changes at once.
const maxRefUpdates = 1 << 16

var objectIDRe = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)

// WriteRefUpdates writes updates as "OLD NEW NAME" lines and an empty
// line, the header of cpm-peer receive-pack --pack.
func WriteRefUpdates(w io.Writer, updates []RefUpdate) error {
	var b strings.Builder
	for _, u := range updates {
		fmt.Fprintf(&b, "%s %s %s\n", u.Old, u.New, u.Name)
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// ReadRefUpdates reads what WriteRefUpdates wrote. It is a node's word:
// every line is checked (object IDs, plain ref names under refs/, each
// once) so that nothing but a ref update reaches git update-ref.
func ReadRefUpdates(r *bufio.Reader) ([]RefUpdate, error) {
	var out []RefUpdate
	seen := map[string]bool{}
	for {
		// ReadSlice bounds a line by the reader's buffer: a node cannot
		// make this one grow without end.
		b, err := r.ReadSlice('\n')
		if err != nil {
			return nil, fmt.Errorf("read ref updates: %w", err)
		}
		line := strings.TrimSuffix(string(b), "\n")
		if line == "" {
			return out, nil
		}
		if len(out) == maxRefUpdates {
			return nil, fmt.Errorf("read ref updates: more than %d", maxRefUpdates)
		}
		f := strings.Split(line, " ")
		if len(f) != 3 || !objectIDRe.MatchString(f[0]) || len(f[1]) != len(f[0]) || !objectIDRe.MatchString(f[1]) {
			return nil, errors.New("read ref updates: a line is not OLD NEW NAME")
		}
		if err := checkRefName(f[2]); err != nil || seen[f[2]] {
			return nil, fmt.Errorf("read ref updates: %q is not a ref name cpm writes", clipName(f[2]))
		}
		seen[f[2]] = true
		out = append(out, RefUpdate{Old: f[0], New: f[1], Name: f[2]})
	}
}

// checkRefName accepts the ref names git check-ref-format accepts, under
// refs/ (git update-ref checks them again).
func checkRefName(name string) error {
	if !strings.HasPrefix(name, "refs/") || len(name) > 1024 || strings.HasSuffix(name, "/") ||
		strings.HasSuffix(name, ".") || strings.Contains(name, "..") || strings.Contains(name, "@{") ||
		strings.ContainsAny(name, " ~^:?*[\\") {
		return errors.New("bad ref name")
	}
	for _, c := range []byte(name) {
		if c < 0x20 || c == 0x7f {
			return errors.New("bad ref name")
		}
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || strings.HasPrefix(part, ".") || strings.HasSuffix(part, ".lock") {
			return errors.New("bad ref name")
		}
	}
	return nil
}

func clipName(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
