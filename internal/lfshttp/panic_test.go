package lfshttp

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"cpm/internal/names"
)

// panicBody panics at the first read, as a fault deep in a route would.
type panicBody struct{}

func (panicBody) Read([]byte) (int, error) { panic("read fault") }
func (panicBody) Close() error             { return nil }

// TestPanicEndsOpen: a route that panics still ends its open request
// (Done: the write gate released, the request logged), as net/http
// recovers the panic and the gate's flock would otherwise stay held.
func TestPanicEndsOpen(t *testing.T) {
	w := newWorld(t, 0)
	var log bytes.Buffer
	w.h.Gateway.Log = zerolog.New(&log)
	oid := strings.Repeat("a", 64)
	r := httptest.NewRequest(http.MethodPut, "/acme/web.git/info/lfs/objects/"+oid, panicBody{})
	r.ContentLength = 4
	r.Header.Set("Content-Length", strconv.Itoa(4))
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the route did not panic")
			}
		}()
		w.h.ServeLFS(httptest.NewRecorder(), r, w.ids["dev"], "", "127.0.0.1:1", names.RepoPath{Org: "acme", Repo: "web"}, "/objects/"+oid)
	}()
	if !strings.Contains(log.String(), `"message":"lfs"`) {
		t.Fatalf("the open request was not ended after a panic; log: %s", log.String())
	}
}
