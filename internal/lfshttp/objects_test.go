package lfshttp

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// objectsWorld is a world with objects up to 64 bytes and the content
// its subtests upload.
type objectsWorld struct {
	world
	content, oid string
}

// batch sends a batch as user and decodes a 200 answer.
func (w objectsWorld) batch(t *testing.T, user, op string, objs ...batchObject) (int, batchResponse) {
	t.Helper()
	code, body := w.call(t, user, "POST", api+"/objects/batch", jsonBody(t, batchRequest{Operation: op, Transfers: []string{"basic"}, Objects: objs}))
	var res batchResponse
	if code == http.StatusOK {
		if err := json.Unmarshal([]byte(body), &res); err != nil || len(res.Objects) != len(objs) {
			t.Fatalf("batch answer %q: %v", body, err)
		}
	}
	return code, res
}

func TestObjects(t *testing.T) {
	content := "hello, large file\n"
	w := objectsWorld{world: newWorld(t, 64), content: content, oid: oidOf(content)}
	t.Run("upload batch offers upload and verify with the caller's credential", w.uploadBatch)
	t.Run("objects that are invalid or too large fail alone", w.invalidObjects)
	t.Run("a reader may not upload", w.readerUpload)
	t.Run("an anonymous upload asks for credentials", w.anonymousUpload)
	t.Run("an outsider is answered as for a missing repository", w.outsider)
	t.Run("content that does not match its id leaves nothing", w.corrupt)
	t.Run("an oversize upload is refused before it is read", w.oversize)
	t.Run("upload, verify, download", w.roundTrip)
	t.Run("hostile paths", w.hostilePaths)
}

func (w objectsWorld) uploadBatch(t *testing.T) {
	code, res := w.batch(t, "dev", "upload", batchObject{w.oid, int64(len(w.content))})
	a := res.Objects[0].Actions
	if code != 200 || !strings.HasSuffix(a["upload"].Href, api+"/objects/"+w.oid) || a["upload"].Header["Authorization"] != "Bearer test-dev" || a["verify"].Href == "" {
		t.Fatalf("%d %+v", code, res)
	}
}

func (w objectsWorld) invalidObjects(t *testing.T) {
	_, res := w.batch(t, "dev", "upload", batchObject{"NOTHEX", 1}, batchObject{w.oid, -1}, batchObject{oidOf("x"), 65}, batchObject{oidOf("y"), 1})
	for i, want := range []int{422, 422, 422, 0} {
		got := 0
		if e := res.Objects[i].Error; e != nil {
			got = e.Code
		}
		if got != want {
			t.Errorf("object %d: error %d, want %d (%+v)", i, got, want, res.Objects[i])
		}
	}
}

func (w objectsWorld) readerUpload(t *testing.T) {
	if code, body := w.call(t, "member", "POST", api+"/objects/batch", jsonBody(t, batchRequest{Operation: "upload", Objects: []batchObject{{w.oid, 1}}})); code != 403 || !strings.Contains(body, "permission denied") {
		t.Fatalf("%d %s", code, body)
	}
	if code, _ := w.call(t, "member", "PUT", api+"/objects/"+w.oid, strings.NewReader(w.content)); code != 403 {
		t.Fatalf("put: %d", code)
	}
}

func (w objectsWorld) anonymousUpload(t *testing.T) {
	req := jsonBody(t, batchRequest{Operation: "upload", Objects: []batchObject{{w.oid, 1}}})
	if code, body := w.call(t, "", "POST", "/acme/pub.git/info/lfs/objects/batch", req); code != 401 || !strings.Contains(body, "permission denied") {
		t.Fatalf("%d %s", code, body)
	}
}

func (w objectsWorld) outsider(t *testing.T) {
	code, body := w.call(t, "outsider", "POST", api+"/objects/batch", jsonBody(t, batchRequest{Operation: "download", Objects: []batchObject{{w.oid, 1}}}))
	code2, body2 := w.call(t, "outsider", "POST", "/acme/nothing.git/info/lfs/objects/batch", jsonBody(t, batchRequest{Operation: "download", Objects: []batchObject{{w.oid, 1}}}))
	if code != 404 || code2 != 404 || strings.Replace(body, "web", "nothing", 1) != body2 {
		t.Fatalf("%d %s / %d %s", code, body, code2, body2)
	}
}

func (w objectsWorld) corrupt(t *testing.T) {
	if code, body := w.call(t, "dev", "PUT", api+"/objects/"+w.oid, strings.NewReader(strings.ToUpper(w.content))); code != 422 || !strings.Contains(body, "hashes to") {
		t.Fatalf("%d %s", code, body)
	}
	if f := w.stored(t); len(f) != 0 {
		t.Fatalf("left %v", f)
	}
}

func (w objectsWorld) oversize(t *testing.T) {
	big := strings.Repeat("z", 65)
	if code, body := w.call(t, "dev", "PUT", api+"/objects/"+oidOf(big), strings.NewReader(big)); code != 413 || !strings.Contains(body, "lfs_max_object_size") {
		t.Fatalf("%d %s", code, body)
	}
}

func (w objectsWorld) roundTrip(t *testing.T) {
	if code, body := w.call(t, "dev", "PUT", api+"/objects/"+w.oid, strings.NewReader(w.content)); code != 200 {
		t.Fatalf("put: %d %s", code, body)
	}
	if code, body := w.call(t, "dev", "POST", api+"/verify", jsonBody(t, batchObject{w.oid, int64(len(w.content))})); code != 200 {
		t.Fatalf("verify: %d %s", code, body)
	}
	if code, _ := w.call(t, "dev", "POST", api+"/verify", jsonBody(t, batchObject{w.oid, 3})); code != 422 {
		t.Fatalf("verify of a wrong size: %d", code)
	}
	if _, res := w.batch(t, "dev", "upload", batchObject{w.oid, int64(len(w.content))}); res.Objects[0].Actions != nil {
		t.Fatalf("stored object offered for upload again: %+v", res.Objects[0])
	}
	_, res := w.batch(t, "member", "download", batchObject{w.oid, int64(len(w.content))}, batchObject{oidOf("absent"), 6})
	if res.Objects[0].Actions["download"].Href == "" || res.Objects[1].Error == nil || res.Objects[1].Error.Code != 404 {
		t.Fatalf("%+v", res)
	}
	if code, body := w.call(t, "member", "GET", api+"/objects/"+w.oid, nil); code != 200 || body != w.content {
		t.Fatalf("get: %d %q", code, body)
	}
	if code, _ := w.call(t, "outsider", "GET", api+"/objects/"+w.oid, nil); code != 404 {
		t.Fatalf("outsider's get: %d", code)
	}
}

func (w objectsWorld) hostilePaths(t *testing.T) {
	for _, p := range []string{"/objects/../../config", "/objects/" + strings.Repeat("a", 63) + "G", "/locks/1/../../unlock", "/nothing"} {
		if code, _ := w.call(t, "dev", "GET", api+p, nil); code != 404 && code != 405 {
			t.Errorf("%s: %d", p, code)
		}
	}
	for _, p := range []string{"/objects/" + w.oid, "/locks/1/unlock"} {
		if code, _ := w.call(t, "dev", "DELETE", api+p, nil); code != 405 {
			t.Errorf("DELETE %s: %d", p, code)
		}
	}
}
