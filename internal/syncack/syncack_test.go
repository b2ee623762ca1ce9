package syncack

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestAskAndAnswer(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	path := filepath.Join(t.TempDir(), "sync.sock")
	if _, err := Ask(ctx, path, Request{Repo: "acme/web"}); err == nil {
		t.Fatal("an answer with nobody listening")
	}
	var got Request
	err := Listen(ctx, path, 200*time.Millisecond, func(hctx context.Context, req Request) Answer {
		got = req
		if _, ok := hctx.Deadline(); !ok {
			t.Error("the handler has no deadline")
		}
		return Answer{Replicated: []string{"n2"}}
	})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %v %v", fi, err)
	}
	ans, err := Ask(ctx, path, Request{Repo: "acme/web", Generation: 7, Epoch: 2})
	if err != nil || !reflect.DeepEqual(ans, Answer{Replicated: []string{"n2"}}) {
		t.Fatalf("answer %+v %v", ans, err)
	}
	if got != (Request{Repo: "acme/web", Generation: 7, Epoch: 2}) {
		t.Errorf("request %+v", got)
	}
	// A request that names no repository is not answered.
	for _, bad := range []Request{{Repo: "../etc"}, {Repo: "acme/web", Generation: -1}} {
		if _, err := Ask(ctx, path, bad); err == nil {
			t.Errorf("%+v answered", bad)
		}
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("not json\n"))
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, _ := c.Read(make([]byte, 10)); n != 0 {
		t.Error("garbage answered")
	}
	c.Close()
}
