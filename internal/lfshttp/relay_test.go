package lfshttp

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"cpm/internal/gateway"
	"cpm/internal/names"
)

// relayed serves raw as a request relayed by node-2 for user, and
// returns the answer as the relaying node reads it.
func (w world) relayed(t *testing.T, user, raw string) (*http.Response, string, error) {
	t.Helper()
	req := gateway.LFSRequest{Identity: w.ids[user], Repo: names.RepoPath{Org: "acme", Repo: "web"},
		RemoteAddr: "192.0.2.1:4000", Relayed: "node-2", Hops: 1}
	var out bytes.Buffer
	if err := w.h.ServeRelayed(context.Background(), req, "https://front.example/", strings.NewReader(raw), &out); err != nil {
		return nil, "", err
	}
	res, err := http.ReadResponse(bufio.NewReader(&out), nil)
	if err != nil {
		t.Fatalf("answer to a relayed request: %v\n%s", err, out.String())
	}
	var body bytes.Buffer
	body.ReadFrom(res.Body)
	return res, body.String(), nil
}

// A relayed request is answered as HTTP on the stream, its actions under
// the base URL the client used; what is no HTTP request within the
// bounds is refused before anything is answered.
func TestServeRelayed(t *testing.T) {
	w := newWorld(t, 100)
	content := "relayed object"
	oid := oidOf(content)
	batch := fmt.Sprintf(`{"operation":"upload","objects":[{"oid":%q,"size":%d}]}`, oid, len(content))
	res, body, err := w.relayed(t, "dev", fmt.Sprintf("POST /objects/batch HTTP/1.1\r\nHost: relay\r\nContent-Type: %s\r\nAuthorization: Bearer x\r\nContent-Length: %d\r\n\r\n%s", mediaType, len(batch), batch))
	if err != nil || res.StatusCode != http.StatusOK || !strings.Contains(body, `"href":"https://front.example/acme/web.git/info/lfs/objects/`+oid+`"`) {
		t.Fatalf("relayed batch: %v %v %s", err, res, body)
	}
	res, _, err = w.relayed(t, "dev", fmt.Sprintf("PUT /objects/%s HTTP/1.1\r\nHost: relay\r\nContent-Length: %d\r\n\r\n%s", oid, len(content), content))
	if err != nil || res.StatusCode != http.StatusOK || len(w.stored(t)) != 1 {
		t.Fatalf("relayed upload: %v %v, stored %v", err, res, w.stored(t))
	}
	if res, _, _ := w.relayed(t, "member", fmt.Sprintf("PUT /objects/%s HTTP/1.1\r\nHost: relay\r\nContent-Length: 1\r\n\r\nx", oid)); res == nil || res.StatusCode != http.StatusForbidden {
		t.Errorf("a reader's relayed upload: %v", res)
	}
	for name, raw := range map[string]string{
		"not HTTP":       "git-lfs-transfer upload\n",
		"endless header": "GET /locks HTTP/1.1\r\nHost: relay\r\nX: " + strings.Repeat("a", maxRelayedHead),
		"empty":          "",
	} {
		if _, _, err := w.relayed(t, "dev", raw); err == nil {
			t.Errorf("%s: answered", name)
		}
	}
}

// A relaying node that never sends the request's head does not hold the
// primary's session past the timeout.
func TestReadRelayedHeadTimeout(t *testing.T) {
	r, _ := io.Pipe()
	defer r.Close()
	if _, err := readRelayedHead(bufio.NewReader(r), 20*time.Millisecond); err == nil || !strings.Contains(err.Error(), "no head within") {
		t.Fatalf("a head that never comes: %v", err)
	}
}
