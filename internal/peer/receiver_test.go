package peer

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cpm/internal/names"
	"cpm/internal/replica"
	"cpm/internal/repos"
	"cpm/internal/store"
)

const edKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
const edFP = "SHA256:+DiY3wvvV6TuJJhbpZisF/zLDA0zPMSvHdkr4UvCOqU"

func newReceiver(t *testing.T) *Receiver {
	t.Helper()
	dir := t.TempDir()
	st, err := store.Init(context.Background(), filepath.Join(dir, "cpm.db"))
	if err != nil {
		t.Fatal(err)
	}
	set := replica.New(filepath.Join(dir, "peers"))
	t.Cleanup(func() { set.Close(); st.Close() })
	os.MkdirAll(filepath.Join(dir, "repos"), 0o700)
	return &Receiver{Store: st, Replicas: set, Disk: repos.Root{Dir: filepath.Join(dir, "repos")}, TempDir: dir, Node: "b"}
}

func validMeta() store.Meta {
	return store.Meta{
		Generation: 7,
		Users:      []store.MetaUser{{ID: 1, Name: "alice"}},
		Orgs:       []store.MetaOrg{{ID: 1, Name: "acme"}},
		Members:    []store.MetaMember{{OrgID: 1, UserID: 1, Role: "owner"}},
		Repos:      []store.MetaRepo{{ID: 1, OrgID: 1, Name: "web"}},
		Keys:       []store.MetaKey{{ID: 1, Fingerprint: edFP, Type: "ssh-ed25519", PublicKey: edKey, UserID: 1}},
		Protected:  []store.MetaProtected{{RepoID: 1, Pattern: "refs/heads/main"}},
	}
}

func apply(t *testing.T, r *Receiver, m any) (string, error) {
	t.Helper()
	body, _ := json.Marshal(m)
	var out bytes.Buffer
	err := r.ApplyMeta(context.Background(), "a", bytes.NewReader(body), &out)
	return out.String(), err
}

func TestApplyMetaRefusesHostileRows(t *testing.T) {
	tests := map[string]func(m *store.Meta){
		"user name with a slash":  func(m *store.Meta) { m.Users[0].Name = "../x" },
		"org name with escapes":   func(m *store.Meta) { m.Orgs[0].Name = "acme\x1b[2J" },
		"repo name traversal":     func(m *store.Meta) { m.Repos[0].Name = ".." },
		"key not matching its fp": func(m *store.Meta) { m.Keys[0].Fingerprint = "SHA256:other" },
		"key type lies":           func(m *store.Meta) { m.Keys[0].Type = "ssh-rsa" },
		"not a key":               func(m *store.Meta) { m.Keys[0].PublicKey = "ssh-ed25519 AAAA" },
		"bad role":                func(m *store.Meta) { m.Members[0].Role = "god" },
		"grant on a missing repo": func(m *store.Meta) { m.Grants = []store.MetaGrant{{RepoID: 9, UserID: 1, Perm: "read"}} },
		"bad ref pattern":         func(m *store.Meta) { m.Protected[0].Pattern = "refs/heads/[" },
		"duplicate user":          func(m *store.Meta) { m.Users = append(m.Users, store.MetaUser{ID: 2, Name: "ALICE"}) },
	}
	for name, spoil := range tests {
		t.Run(name, func(t *testing.T) {
			r := newReceiver(t)
			if _, err := apply(t, r, validMeta()); err != nil {
				t.Fatal(err)
			}
			m := validMeta()
			spoil(&m)
			if _, err := apply(t, r, m); err == nil {
				t.Fatal("accepted")
			}
			// The previous copy stands, whole.
			meta, _ := r.Replicas.Store(context.Background(), "a", false)
			if o, err := meta.KeyOwnerByFingerprint(context.Background(), edFP); err != nil || o.User != "alice" {
				t.Errorf("previous metadata damaged: %+v %v", o, err)
			}
		})
	}
	r := newReceiver(t)
	if _, err := apply(t, r, map[string]any{"users": []any{}, "surprise": 1}); err == nil {
		t.Error("unknown field accepted")
	}
}

func TestApplyMetaLeavesOutWhatItMayNotReplicate(t *testing.T) {
	ctx := context.Background()
	r := newReceiver(t)
	// This node's own acme/web.
	r.Store.CreateOrg(ctx, store.Actor{Name: "t"}, "acme", "")
	r.Store.CreateRepo(ctx, store.Actor{Name: "t"}, store.NewRepo{Org: "acme", Name: "WEB"}, nil)
	out, err := apply(t, r, validMeta())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "skipped acme/web: a repository of this node") {
		t.Errorf("output: %s", out)
	}
	if err := r.Prepare(ctx, Origin{Name: "a"}, names.RepoPath{Org: "acme", Repo: "web"}); err == nil {
		t.Error("prepared a replica over this node's own repository")
	}
	// Another origin's replica is not taken over either.
	m := validMeta()
	m.Repos[0].Name = "api"
	if _, err := apply(t, r, m); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(m)
	var o2 bytes.Buffer
	if err := r.ApplyMeta(ctx, "c", bytes.NewReader(body), &o2); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(o2.String(), "already a replica of a") {
		t.Errorf("second origin: %s", o2.String())
	}
	if err := r.Prepare(ctx, Origin{Name: "c"}, names.RepoPath{Org: "acme", Repo: "api"}); err == nil {
		t.Error("origin c prepared origin a's replica")
	}
}
