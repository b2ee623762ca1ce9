package lfshttp

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestLocks(t *testing.T) {
	w := newWorld(t, 0)
	var created lockAnswer
	t.Run("a writer locks a path once", func(t *testing.T) {
		code, body := w.call(t, "dev", "POST", api+"/locks", jsonBody(t, locksRequest{Path: "art/a.psd"}))
		if code != 201 || json.Unmarshal([]byte(body), &created) != nil || created.Lock.Owner.Name != "dev" || created.Lock.Path != "art/a.psd" {
			t.Fatalf("%d %s", code, body)
		}
		if code, body := w.call(t, "owner", "POST", api+"/locks", jsonBody(t, locksRequest{Path: "art/a.psd"})); code != 409 || !strings.Contains(body, `"id":"`+created.Lock.ID+`"`) {
			t.Fatalf("second lock: %d %s", code, body)
		}
		if code, _ := w.call(t, "dev", "POST", api+"/locks", jsonBody(t, locksRequest{Path: "a\nb"})); code != 422 {
			t.Fatalf("two-line path: %d", code)
		}
	})
	t.Run("a reader lists but may not lock", func(t *testing.T) {
		code, body := w.call(t, "member", "GET", api+"/locks?path=art/a.psd", nil)
		var page locksPage
		if code != 200 || json.Unmarshal([]byte(body), &page) != nil || len(page.Locks) != 1 {
			t.Fatalf("%d %s", code, body)
		}
		if code, _ := w.call(t, "member", "POST", api+"/locks", jsonBody(t, locksRequest{Path: "b"})); code != 403 {
			t.Fatalf("reader's lock: %d", code)
		}
		if code, _ := w.call(t, "outsider", "GET", api+"/locks", nil); code != 404 {
			t.Fatalf("outsider's list: %d", code)
		}
	})
	t.Run("verify splits ours and theirs", func(t *testing.T) {
		var p verifyPage
		code, body := w.call(t, "owner", "POST", api+"/locks/verify", jsonBody(t, locksRequest{}))
		if code != 200 || json.Unmarshal([]byte(body), &p) != nil || len(p.Ours) != 0 || len(p.Theirs) != 1 {
			t.Fatalf("%d %s", code, body)
		}
		if code, _ := w.call(t, "member", "POST", api+"/locks/verify", jsonBody(t, locksRequest{})); code != 403 {
			t.Fatalf("reader's verify: %d", code)
		}
	})
	unlock := api + "/locks/" + created.Lock.ID + "/unlock"
	t.Run("only the owner, or an admin with force, unlocks", func(t *testing.T) {
		w.call(t, "owner", "POST", api+"/locks", jsonBody(t, locksRequest{Path: "other"}))
		if code, _ := w.call(t, "owner", "POST", unlock, jsonBody(t, locksRequest{})); code != 403 {
			t.Fatalf("admin without force: %d", code)
		}
		if code, _ := w.call(t, "dev", "POST", api+"/locks/2/unlock", jsonBody(t, locksRequest{Force: true})); code != 403 {
			t.Fatalf("writer's force: %d", code)
		}
		if code, body := w.call(t, "owner", "POST", unlock, jsonBody(t, locksRequest{Force: true})); code != 200 || !strings.Contains(body, "art/a.psd") {
			t.Fatalf("admin's force: %d %s", code, body)
		}
		if code, _ := w.call(t, "dev", "POST", unlock, nil); code != 404 {
			t.Fatalf("unlock of a removed lock: %d", code)
		}
		if code, _ := w.call(t, "owner", "POST", api+"/locks/2/unlock", nil); code != 200 {
			t.Fatalf("owner's own unlock: %d", code)
		}
	})
}
