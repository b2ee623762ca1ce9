package lfs

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
)

// Pointer is a Git LFS pointer file's reference to an object.
type Pointer struct {
	OID  string
	Size int64
}

// maxPointer is the largest blob that can be a pointer file (the spec
// says smaller than 1024 bytes).
const maxPointer = 1024

// Pointers lists the LFS objects that the blobs reachable from the
// repository's refs at dir point to, each once. env is git's environment.
func Pointers(ctx context.Context, dir string, env []string) ([]Pointer, error) {
	small, err := smallBlobs(ctx, dir, env)
	if err != nil || len(small) == 0 {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, "git", "cat-file", "--batch")
	cmd.Dir, cmd.Env = dir, env
	cmd.Stdin = strings.NewReader(strings.Join(small, "\n") + "\n")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("git cat-file: %w", err)
	}
	seen := map[string]bool{}
	var ptrs []Pointer
	r := bufio.NewReader(out)
	for range small {
		body, err := nextObject(r)
		if err != nil {
			cmd.Wait()
			return nil, fmt.Errorf("read blobs: %w", err)
		}
		if p, ok := ParsePointer(body); ok && !seen[p.OID] {
			seen[p.OID] = true
			ptrs = append(ptrs, p)
		}
	}
	return ptrs, cmd.Wait()
}

// smallBlobs are the reachable blobs small enough to be pointers.
func smallBlobs(ctx context.Context, dir string, env []string) ([]string, error) {
	list := exec.CommandContext(ctx, "git", "rev-list", "--objects", "--all", "--filter=blob:limit="+strconv.Itoa(maxPointer))
	list.Dir, list.Env = dir, env
	ids, err := list.Output()
	if err != nil {
		return nil, fmt.Errorf("git rev-list: %w", err)
	}
	check := exec.CommandContext(ctx, "git", "cat-file", "--batch-check=%(objecttype) %(objectname)")
	check.Dir, check.Env = dir, env
	var in bytes.Buffer
	for _, l := range strings.Split(string(ids), "\n") {
		if id, _, _ := strings.Cut(l, " "); id != "" {
			in.WriteString(id + "\n")
		}
	}
	check.Stdin = &in
	types, err := check.Output()
	if err != nil {
		return nil, fmt.Errorf("git cat-file: %w", err)
	}
	var blobs []string
	for _, l := range strings.Split(string(types), "\n") {
		if t, id, ok := strings.Cut(l, " "); ok && t == "blob" {
			blobs = append(blobs, id)
		}
	}
	return blobs, nil
}

// nextObject reads one "ID TYPE SIZE\nCONTENT\n" of git cat-file --batch.
func nextObject(r *bufio.Reader) ([]byte, error) {
	hdr, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	f := strings.Fields(hdr)
	if len(f) != 3 {
		return nil, fmt.Errorf("unexpected %q", strings.TrimSpace(hdr))
	}
	n, err := strconv.Atoi(f[2])
	if err != nil || n < 0 || n > maxPointer {
		return nil, fmt.Errorf("unexpected size in %q", strings.TrimSpace(hdr))
	}
	body := make([]byte, n+1) // and the newline after it
	_, err = io.ReadFull(r, body)
	return body[:n], err
}

// ParsePointer reads a pointer file: a version line, then the oid and
// size lines (and any extension lines).
func ParsePointer(b []byte) (Pointer, bool) {
	if len(b) >= maxPointer || !bytes.HasPrefix(b, []byte("version https://git-lfs.github.com/spec/v1\n")) {
		return Pointer{}, false
	}
	var p Pointer
	for _, l := range strings.Split(string(b), "\n") {
		switch k, v, _ := strings.Cut(l, " "); k {
		case "oid":
			p.OID, _ = strings.CutPrefix(v, "sha256:")
		case "size":
			p.Size, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return p, ValidOID(p.OID)
}
