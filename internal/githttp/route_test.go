package githttp

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestParseRoute(t *testing.T) {
	for _, tc := range []struct {
		path, repo, rest string
		dotGit, ok       bool
	}{
		{"/acme/web.git/info/refs", "acme/web", "/info/refs", true, true},
		{"/acme/web/git-upload-pack", "acme/web", "/git-upload-pack", false, true},
		{"/acme/web", "acme/web", "", false, true},
		{"/acme/web/", "acme/web", "/", false, true},
		{"/acme/web/sub/pkg", "acme/web", "/sub/pkg", false, true},
		{"/acme/web.git/info/lfs/objects/batch", "acme/web", "/info/lfs/objects/batch", true, true},
		{"/acme", "", "", false, false},
		{"/", "", "", false, false},
		{"", "", "", false, false},
		{"acme/web", "", "", false, false},
		{"//acme/web", "", "", false, false},
		{"/acme//web", "", "", false, false},
		{"/acme/web//info/refs", "", "", false, false},
		{"/acme/../web", "", "", false, false},
		{"/acme/web/../../etc", "", "", false, false},
		{"/acme/web/./info/refs", "", "", false, false},
		{"/acme/%2e%2e/web", "", "", false, false},
		{"/acme%2Fweb", "", "", false, false},
		{"/acme/web%00", "", "", false, false},
		{"/acme\\web", "", "", false, false},
		{"/.acme/web", "", "", false, false},
		{"/acme/-web", "", "", false, false},
		{"/acme/web.git.git", "", "", false, false},
		{"/acme/" + strings.Repeat("a", maxPath), "", "", false, false},
	} {
		rt, ok := parseRoute(tc.path)
		if ok != tc.ok || (ok && (rt.repo.String() != tc.repo || rt.rest != tc.rest || rt.dotGit != tc.dotGit)) {
			t.Errorf("parseRoute(%.60q) = %+v, %v", tc.path, rt, ok)
		}
	}
}

func TestCredential(t *testing.T) {
	basic := func(user, pass string) string {
		r, _ := http.NewRequest("GET", "/", nil)
		r.SetBasicAuth(user, pass)
		return r.Header.Get("Authorization")
	}
	for _, tc := range []struct {
		header, secret string
		given, ok      bool
	}{
		{"", "", false, false},
		{basic("any", "cpm_abc"), "cpm_abc", true, true},
		{basic("", "cpm_abc"), "cpm_abc", true, true},
		{"Bearer cpm_abc", "cpm_abc", true, true},
		{"bearer  cpm_abc", "cpm_abc", true, true},
		{basic("x", ""), "", true, false},
		{"Bearer ", "", true, false},
		{"Digest x", "", true, false},
		{"Basic !!!", "", true, false},
		{basic("x", "cpm_a b"), "cpm_a b", true, false},
		{basic("x", strings.Repeat("a", maxToken+1)), strings.Repeat("a", maxToken+1), true, false},
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		secret, given, ok := credential(r)
		if secret != tc.secret || given != tc.given || ok != tc.ok {
			t.Errorf("%q: %q %v %v", tc.header, secret, given, ok)
		}
	}
}

func TestRequestBody(t *testing.T) {
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		z := gzip.NewWriter(&buf)
		z.Write(b)
		z.Close()
		return buf.Bytes()
	}
	read := func(enc string, body []byte, limit int64) (string, bool, error) {
		r, _ := http.NewRequest("POST", "/", bytes.NewReader(body))
		if enc != "" {
			r.Header.Set("Content-Encoding", enc)
		}
		c, err := requestBody(r, limit)
		if err != nil {
			return "", false, err
		}
		b, err := io.ReadAll(c)
		return string(b), c.over.Load(), err
	}
	if s, over, err := read("", []byte("0000"), 4); s != "0000" || over || err != nil {
		t.Errorf("exactly the cap: %q %v %v", s, over, err)
	}
	broken := &cappedReader{r: io.MultiReader(strings.NewReader("0000"), iotest.ErrReader(io.ErrUnexpectedEOF)), left: 4, capped: true}
	if b, err := io.ReadAll(broken); string(b) != "0000" || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a read error right at the cap: %q %v, want the error", b, err)
	}
	late := &cappedReader{r: strings.NewReader("0000"), left: 4, capped: true, until: time.Now().Add(-time.Second)}
	if _, err := io.ReadAll(late); !errors.Is(err, errTooSlow) {
		t.Errorf("a negotiation read past its time: %v", err)
	}
	if c, _ := requestBody(httptest.NewRequest("POST", "/", strings.NewReader("0000")), maxNegotiation); c.until.IsZero() {
		t.Error("an upload-pack body has no time limit")
	}
	if _, over, err := read("", []byte("00000"), 4); !over || !errors.Is(err, errTooLarge) {
		t.Errorf("past the cap: %v %v", over, err)
	}
	if s, _, err := read("gzip", gz([]byte("hello")), 1000); s != "hello" || err != nil {
		t.Errorf("gzip: %q %v", s, err)
	}
	if _, over, err := read("x-gzip", gz(make([]byte, 1<<20)), 1000); !over || !errors.Is(err, errTooLarge) {
		t.Errorf("a gzip bomb: %v %v", over, err)
	}
	if _, _, err := read("gzip", gz([]byte("0000")), 0); !errors.Is(err, errEncoding) {
		t.Errorf("a gzipped body without a cap (a push): %v", err)
	}
	if _, _, err := read("br", []byte("x"), 1000); !errors.Is(err, errEncoding) {
		t.Errorf("br: %v", err)
	}
	if _, _, err := read("gzip", []byte("not gzip"), 0); err == nil {
		t.Error("a body that is not gzip was read")
	}
}

func TestSlots(t *testing.T) {
	s := NewSlots(3, 1)
	a, ok := s.take(true)
	if !ok {
		t.Fatal("no first anonymous slot")
	}
	if _, ok := s.take(true); ok {
		t.Error("a second anonymous request got past a bound of one")
	}
	b, ok1 := s.take(false)
	_, ok2 := s.take(false)
	if !ok1 || !ok2 {
		t.Fatal("requests with tokens get the other slots")
	}
	if _, ok := s.take(false); ok {
		t.Error("a fourth request got past a bound of three")
	}
	a()
	b()
	if _, ok := s.take(true); !ok {
		t.Error("a freed anonymous slot is not taken again")
	}
	var none *Slots
	if release, ok := none.take(true); !ok || release == nil {
		t.Error("nil Slots bound something")
	}
}
