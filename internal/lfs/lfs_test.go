package lfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"
)

func oidOf(b string) string {
	s := sha256.Sum256([]byte(b))
	return hex.EncodeToString(s[:])
}

func TestObjectsPut(t *testing.T) {
	o := Objects{Dir: t.TempDir(), MaxSize: 10}
	body := "hello"
	tests := []struct {
		name    string
		oid     string
		size    int64
		body    string
		wantErr error
	}{
		{"stored", oidOf(body), 5, body, nil},
		{"again, unchanged", oidOf(body), 5, body, nil},
		{"wrong content", oidOf("other"), 5, body, ErrCorrupt},
		{"short", oidOf(body), 6, body, ErrCorrupt},
		{"long", oidOf(body), 4, body, ErrCorrupt},
		{"too large", oidOf("0123456789x"), 11, "0123456789x", ErrTooLarge},
		{"invalid id", "../../etc/passwd", 5, body, ErrCorrupt},
	}
	for _, tt := range tests {
		err := o.Put(tt.oid, tt.size, strings.NewReader(tt.body))
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.wantErr)
		}
	}
	if size, ok, _ := o.Size(oidOf(body)); !ok || size != 5 {
		t.Errorf("stored object: %d %v", size, ok)
	}
	if _, ok, _ := o.Size(oidOf("other")); ok {
		t.Error("a corrupt upload was stored")
	}
	if left, _ := os.ReadDir(o.Dir + "/tmp"); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestParsePointer(t *testing.T) {
	oid := oidOf("x")
	tests := []struct {
		body string
		ok   bool
	}{
		{"version https://git-lfs.github.com/spec/v1\noid sha256:" + oid + "\nsize 12\n", true},
		{"version https://git-lfs.github.com/spec/v1\noid sha256:xyz\nsize 12\n", false},
		{"oid sha256:" + oid + "\nsize 12\n", false},
		{"just a file\n", false},
	}
	for _, tt := range tests {
		p, ok := ParsePointer([]byte(tt.body))
		if ok != tt.ok || (ok && (p.OID != oid || p.Size != 12)) {
			t.Errorf("%q: %+v %v", tt.body, p, ok)
		}
	}
}

// pkts writes pkt-lines: "" is a flush, "\x01" a delimiter.
func pkts(lines ...string) string {
	var b strings.Builder
	for _, l := range lines {
		switch l {
		case "":
			b.WriteString("0000")
		case "\x01":
			b.WriteString("0001")
		default:
			fmt.Fprintf(&b, "%04x%s", len(l)+4, l)
		}
	}
	return b.String()
}

// memLocks is Locks in memory.
type memLocks struct{ locks []Lock }

func (m *memLocks) Create(_ context.Context, path, owner string) (Lock, error) {
	for _, l := range m.locks {
		if l.Path == path {
			return l, ErrLockExists
		}
	}
	l := Lock{ID: fmt.Sprint(len(m.locks) + 1), Path: path, Owner: owner}
	m.locks = append(m.locks, l)
	return l, nil
}
func (m *memLocks) List(context.Context, string, string, string, int) ([]Lock, string, error) {
	return m.locks, "", nil
}
func (m *memLocks) Get(_ context.Context, id string) (Lock, error) {
	for _, l := range m.locks {
		if l.ID == id {
			return l, nil
		}
	}
	return Lock{}, ErrNoLock
}
func (m *memLocks) Delete(_ context.Context, d Lock) error {
	for i, l := range m.locks {
		if l.ID == d.ID {
			m.locks = append(m.locks[:i], m.locks[i+1:]...)
			return nil
		}
	}
	return ErrNoLock
}

func TestSession(t *testing.T) {
	body := "some large file"
	oid := oidOf(body)
	upload := pkts("version 1\n", "", "batch\n", "hash-algo=sha256\n", "\x01", oid+" 15\n", "",
		"put-object "+oid+"\n", "size=15\n", "\x01", body, "", "verify-object "+oid+"\n", "size=15\n", "", "quit\n", "")
	tests := []struct {
		name     string
		sess     Session
		input    string
		want     []string // in order in the output
		notStore bool
	}{
		{"upload", Session{Op: Upload, Repo: Repo{CanWrite: true}}, upload,
			[]string{"version=1", "status 200", "status 200", oid + " 15 upload", "status 200", "status 200", "status 200"}, false},
		{"reader's upload", Session{Op: Upload, Repo: Repo{NoWrite: "acme/web: permission denied"}}, upload,
			[]string{"status 403", "uploads: acme/web: permission denied"}, true},
		{"upload in a download session", Session{Op: Download, Repo: Repo{CanWrite: true}}, upload,
			[]string{"status 200", oid + " 15 noop", "status 403", "put-object belongs to an upload session"}, true},
		{"locks", Session{Op: Upload, Repo: Repo{CanWrite: true, User: "ann", Locks: &memLocks{}}},
			pkts("lock\n", "path=a.psd\n", "", "lock\n", "path=a.psd\n", "", "list-lock\n", "", "quit\n", ""),
			[]string{"locking", "status 201", "id=1", "status 409", "a.psd is locked by ann", "status 200", "path 1 a.psd", "owner 1 ours"}, true},
		{"someone else's lock", Session{Op: Upload, Repo: Repo{CanWrite: true, User: "bob", Locks: &memLocks{locks: []Lock{{ID: "1", Path: "a", Owner: "ann"}}}}},
			pkts("unlock 1\n", "", "quit\n", ""), []string{"status 403", "ann's; only they or a repository admin"}, true},
		{"an admin breaks it", Session{Op: Upload, Repo: Repo{CanWrite: true, Admin: true, User: "bob", Locks: &memLocks{locks: []Lock{{ID: "1", Path: "a", Owner: "ann"}}}}},
			pkts("unlock 1\n", "", "quit\n", ""), []string{"status 200", "ownername=ann"}, true},
		{"garbage", Session{Op: Download}, "zzzz", nil, true},
		{"upload on a node fenced meanwhile", Session{Op: Upload, Repo: Repo{CanWrite: true, Fence: func() error { return errors.New("this node lost its lease; try again") }}}, upload,
			[]string{"status 200", "status 200", oid + " 15 upload", "status 503", "this node lost its lease; try again"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.sess.Objects = Objects{Dir: t.TempDir()}
			var out bytes.Buffer
			tt.sess.Serve(context.Background(), strings.NewReader(tt.input), &out)
			at := 0
			for _, w := range tt.want {
				i := strings.Index(out.String()[at:], w)
				if i < 0 {
					t.Fatalf("no %q after %d in %q", w, at, out.String())
				}
				at += i + len(w)
			}
			if _, stored, _ := tt.sess.Objects.Size(oid); stored == tt.notStore {
				t.Errorf("stored: %v", stored)
			}
		})
	}
}

// countingReader counts what the session read of its input.
type countingReader struct {
	r *strings.Reader
	n int
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += n
	return n, err
}

// TestRequestLimits: a request over its limit in lines or bytes is
// refused with 413 before the session holds it, and ends the session as a
// refusal; requests within the limits are served.
func TestRequestLimits(t *testing.T) {
	oid := oidOf("x")
	long := strings.Repeat("a", 60000)
	repeat := func(n int, l string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = l
		}
		return out
	}
	batch := func(lines ...string) string {
		return pkts(append(append([]string{"batch\n", "\x01"}, lines...), "")...)
	}
	tests := []struct {
		name, input string
		want        string
		refused     bool
	}{
		{"batch of long lines", batch(repeat(2000, long)...), "status 413", true},
		{"batch of too many objects", batch(repeat(10001, oid+" 1\n")...), "status 413", true},
		{"batch at the limit", batch(repeat(10000, oid+" 1\n")...) + pkts("quit\n", ""), oid + " 1 noop", false},
		{"long arguments", pkts(append(append([]string{"list-lock\n"}, repeat(20, "x="+long)...), "")...), "status 413", true},
		{"long version capabilities", pkts(append(append([]string{"version 1\n"}, repeat(20, long)...), "")...), "status 413", true},
		{"unknown verb with a long body", pkts(append(append([]string{"frob\n"}, repeat(100, long)...), "")...), "status 413", true},
		{"a lock path of 4 KiB", pkts("lock\n", "path="+strings.Repeat("p", 4096)+"\n", "", "quit\n", ""), "status 201", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Session{Op: Download, Repo: Repo{CanWrite: true, User: "ann", Locks: &memLocks{}, Objects: Objects{Dir: t.TempDir()}}}
			in := &countingReader{r: strings.NewReader(tt.input)}
			var out bytes.Buffer
			err := s.Serve(context.Background(), in, &out)
			if !strings.Contains(out.String(), tt.want) {
				t.Fatalf("no %q in %.300q", tt.want, out.String())
			}
			var r *Refused
			if got := errors.As(err, &r); got != tt.refused {
				t.Fatalf("Serve: %v, want refused %v", err, tt.refused)
			}
			if tt.refused && in.n > batchLimit.bytes+maxPacket+64<<10 {
				t.Errorf("read %d bytes of a refused request before refusing it", in.n)
			}
		})
	}
}

// TestSessionEnds: how a session ends is a refusal for what the server
// turned down, nothing for a client that left.
func TestSessionEnds(t *testing.T) {
	oid := oidOf("x")
	tests := []struct {
		name, input string
		refused     bool
	}{
		{"garbage", "zzzz", true},
		{"put-object in a download session", pkts("put-object "+oid+"\n", "size=1\n", "\x01", "x", ""), true},
		{"malformed batch argument", pkts("batch\n", "nonsense\n", ""), true},
		{"gone mid-packet", "0010ver", false},
		{"gone after a request", pkts("version 1\n", ""), false},
	}
	for _, tt := range tests {
		s := Session{Op: Download, Repo: Repo{Objects: Objects{Dir: t.TempDir()}}}
		err := s.Serve(context.Background(), strings.NewReader(tt.input), io.Discard)
		var r *Refused
		if errors.As(err, &r) != tt.refused || (!tt.refused && err != nil) {
			t.Errorf("%s: %v, want refused %v", tt.name, err, tt.refused)
		}
	}
}

// TestLeftovers: only regular files under lfs/tmp untouched since the
// cutoff are an upload's leftovers.
func TestLeftovers(t *testing.T) {
	repo := t.TempDir()
	if left, err := Leftovers(repo, time.Now()); err != nil || len(left) != 0 {
		t.Fatalf("no lfs/tmp: %v, %v", left, err)
	}
	tmp := tmpDir(ObjectsDir(repo))
	old := time.Now().Add(-2 * time.Hour)
	for name, mtime := range map[string]time.Time{"dead": old, "live": time.Now()} {
		p := tmp + "/" + oidOf(name) + "-1"
		os.MkdirAll(tmp, 0o755)
		os.WriteFile(p, []byte(name), 0o644)
		os.Chtimes(p, mtime, mtime)
	}
	os.Mkdir(tmp+"/a-dir", 0o755)
	os.Chtimes(tmp+"/a-dir", old, old)
	left, err := Leftovers(repo, time.Now().Add(-time.Hour))
	if err != nil || len(left) != 1 || left[0].Path != tmp+"/"+oidOf("dead")+"-1" || left[0].Size != 4 {
		t.Fatalf("leftovers: %+v, %v", left, err)
	}
	// lfs/ a symbolic link to elsewhere: nothing there is listed.
	elsewhere, linked := t.TempDir(), t.TempDir()
	os.MkdirAll(elsewhere+"/tmp", 0o755)
	os.WriteFile(elsewhere+"/tmp/precious", []byte("x"), 0o644)
	os.Chtimes(elsewhere+"/tmp/precious", old, old)
	os.Symlink(elsewhere, ObjectsDir(linked))
	if left, err := Leftovers(linked, time.Now()); err == nil || len(left) != 0 {
		t.Errorf("leftovers through a symbolic link: %+v, %v", left, err)
	}
}
