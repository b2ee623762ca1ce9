package lfshttp

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestBatchHref: actions point at the configured base URL, never at the
// request's Host (which would carry the client's token to another host);
// without a base URL the batch is refused; Basic credentials are not
// repeated in the answer, a Bearer token is.
func TestBatchHref(t *testing.T) {
	w := newWorld(t, 64)
	oid := oidOf("x")
	send := func(auth string) (int, string) {
		req, _ := http.NewRequest("POST", w.srv.URL+api+"/objects/batch",
			jsonBody(t, batchRequest{Operation: "upload", Objects: []batchObject{{OID: oid, Size: 1}}}))
		req.Host = "evil.example"
		req.Header.Set("X-Test-User", "dev")
		req.Header.Set("Content-Type", mediaType)
		req.Header.Set("Authorization", auth)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := res.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return res.StatusCode, b.String()
	}
	w.h.BaseURL = "https://git.example.com/"
	code, body := send("Basic ZGV2OnNlY3JldA==")
	var res batchResponse
	if code != http.StatusOK || json.Unmarshal([]byte(body), &res) != nil {
		t.Fatalf("%d %s", code, body)
	}
	up := res.Objects[0].Actions["upload"]
	if !strings.HasPrefix(up.Href, "https://git.example.com/acme/web.git/info/lfs/objects/") || strings.Contains(body, "evil") {
		t.Errorf("href %q (body %s), want under the base URL", up.Href, body)
	}
	if strings.Contains(body, "Basic") || up.Header != nil {
		t.Errorf("Basic credentials repeated in the answer: %s", body)
	}
	if _, body := send("Bearer cpm_x"); !strings.Contains(body, `"Authorization":"Bearer cpm_x"`) {
		t.Errorf("Bearer token not in the actions: %s", body)
	}
	w.h.BaseURL = ""
	if code, body := send("Bearer cpm_x"); code == http.StatusOK || strings.Contains(body, "evil") || !strings.Contains(body, "http_url") {
		t.Errorf("no base URL: %d %s, want a refusal naming http_url", code, body)
	}
}

// TestContentType: a POST whose body is not the API's JSON (a cross-site
// text/plain form) is refused before it is read, so it cannot lock.
func TestContentType(t *testing.T) {
	w := newWorld(t, 64)
	for _, tc := range []struct {
		ctype string
		code  int
	}{
		{"text/plain", http.StatusUnsupportedMediaType},
		{"", http.StatusUnsupportedMediaType},
		{"application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{mediaType + "; charset=utf-8", http.StatusCreated},
	} {
		req, _ := http.NewRequest("POST", w.srv.URL+api+"/locks", strings.NewReader(`{"path":"a.bin"}`))
		req.Header.Set("X-Test-User", "dev")
		if tc.ctype != "" {
			req.Header.Set("Content-Type", tc.ctype)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != tc.code {
			t.Errorf("Content-Type %q: %d, want %d", tc.ctype, res.StatusCode, tc.code)
		}
	}
}

// TestBatchSize: a batch is at most 1,000 objects.
func TestBatchSize(t *testing.T) {
	if e := (batchRequest{Operation: "download", Objects: make([]batchObject, 1001)}).check(); e == nil || e.code != http.StatusRequestEntityTooLarge {
		t.Fatalf("1,001 objects: %v, want 413", e)
	}
}
