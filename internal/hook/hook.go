// Package hook is what runs inside git's receive hooks. pre-receive
// decides every ref update of a push against the pusher's permissions and
// the repository's protected refs (seeing the pushed objects in git's
// quarantine); post-receive records the accepted push in the audit log
// and queues it for replication, waking the workers (or, without the
// database, leaves a marker for them). Both then run the repository's own
// hooks from HOOK.d/. Who pushes comes from the CPM_* variables that the
// gateway sets for git (docs/ARCHITECTURE.md lists them).
package hook

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"cpm/internal/access"
	"cpm/internal/authz"
	"cpm/internal/datadir"
	"cpm/internal/names"
	"cpm/internal/repos"
	"cpm/internal/store"
)

// Environment variables the gateway sets for git and so for the hooks.
const (
	EnvUser        = "CPM_USER"
	EnvKeyID       = "CPM_KEY_ID"
	EnvFingerprint = "CPM_KEY_FINGERPRINT"
	EnvRemoteAddr  = "CPM_REMOTE_ADDR"
	// EnvCert is set, to "SERIAL KEYID", when a certificate authenticated
	// the push: there is no registered key, and the user is EnvUser.
	EnvCert = "CPM_CERT"
	// EnvTokenID is set instead of EnvKeyID when an access token (HTTP)
	// authenticated the push: the token's id, looked up again.
	EnvTokenID = "CPM_TOKEN_ID"
	// EnvVia names the neighbour that forwarded the push.
	EnvVia = "CPM_VIA"
	// EnvRelayedBy names the node of this cluster that relayed the push
	// to the repository's primary: audited as via, but, unlike EnvVia,
	// no limit on the pusher's rights (the nodes share one database).
	EnvRelayedBy = "CPM_RELAYED_BY"
	// EnvTransport names how the pusher came when not over ssh ("http"),
	// for the audit row.
	EnvTransport = "CPM_TRANSPORT"
	// EnvEpoch is the repository's epoch that the gateway read when the
	// session started, set only for a repository with a primary node: a
	// write is accepted under it, and refused once an election or a
	// handover moved the repository on (store.Writer).
	EnvEpoch = "CPM_EPOCH"
)

// maxInput bounds what git may feed a hook: 4 MiB of ref updates is tens
// of thousands of refs; a bigger push is refused rather than buffered.
const maxInput = 4 << 20

// Update is one line of a receive hook's input.
type Update struct {
	Old, New, Ref string
}

func zero(id string) bool { return strings.Trim(id, "0") == "" }

// Create reports whether the update creates the ref.
func (u Update) Create() bool { return zero(u.Old) }

// Delete reports whether the update deletes the ref.
func (u Update) Delete() bool { return zero(u.New) }

// ReadUpdates parses "OLD NEW REF" lines.
func ReadUpdates(r io.Reader) ([]Update, []byte, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxInput+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read ref updates: %w", err)
	}
	if len(raw) > maxInput {
		return nil, nil, errors.New("too many ref updates in one push")
	}
	var out []Update
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 4096), 4096)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || !objectID(f[0]) || !objectID(f[1]) || !strings.HasPrefix(f[2], "refs/") {
			return nil, nil, fmt.Errorf("malformed ref update %q", sc.Text())
		}
		out = append(out, Update{Old: f[0], New: f[1], Ref: f[2]})
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("read ref updates: %w", err)
	}
	return out, raw, nil
}

// Input is updates as git feeds them to a receive hook, the inverse of
// ReadUpdates.
func Input(updates []Update) []byte {
	var b bytes.Buffer
	for _, u := range updates {
		fmt.Fprintf(&b, "%s %s %s\n", u.Old, u.New, u.Ref)
	}
	return b.Bytes()
}

func objectID(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Pusher is who is pushing, from the environment the gateway set. Local
// is true for a push made on the server itself, without the gateway: the
// operator already has the files, so it is recorded but not restricted.
type Pusher struct {
	Local       bool
	KeyID       int64
	User        string
	Fingerprint string
	RemoteAddr  string
	// Cert is set when a certificate authenticated the push.
	Cert *CertPusher
	// TokenID is set when an access token authenticated the push.
	TokenID int64
	// Via names the neighbour that forwarded the push, "" for none.
	Via string
	// RelayedBy names the node of this cluster that relayed the push.
	RelayedBy string
	// Transport is "http" for a push over HTTP ("" for ssh).
	Transport string
}

// CertPusher names the certificate of a push.
type CertPusher struct {
	Serial uint64
	KeyID  string
}

// PusherFromEnv reads the gateway's variables.
func PusherFromEnv(getenv func(string) string) (Pusher, error) {
	if c := getenv(EnvCert); c != "" {
		serial, keyID, _ := strings.Cut(c, " ")
		n, err := strconv.ParseUint(serial, 10, 64)
		if err != nil || getenv(EnvUser) == "" {
			return Pusher{}, fmt.Errorf("bad %s %q", EnvCert, c)
		}
		return Pusher{User: getenv(EnvUser), Fingerprint: getenv(EnvFingerprint), RemoteAddr: getenv(EnvRemoteAddr),
			Cert: &CertPusher{Serial: n, KeyID: keyID}, Via: getenv(EnvVia), RelayedBy: getenv(EnvRelayedBy), Transport: getenv(EnvTransport)}, nil
	}
	if t := getenv(EnvTokenID); t != "" {
		n, err := strconv.ParseInt(t, 10, 64)
		if err != nil || n <= 0 {
			return Pusher{}, fmt.Errorf("bad %s %q", EnvTokenID, t)
		}
		return Pusher{TokenID: n, User: getenv(EnvUser), RemoteAddr: getenv(EnvRemoteAddr), RelayedBy: getenv(EnvRelayedBy),
			Transport: getenv(EnvTransport)}, nil
	}
	id := getenv(EnvKeyID)
	if id == "" {
		u := getenv("USER")
		if u == "" {
			u = "unknown"
		}
		return Pusher{Local: true, User: "local:" + u}, nil
	}
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 {
		return Pusher{}, fmt.Errorf("bad %s %q", EnvKeyID, id)
	}
	return Pusher{KeyID: n, User: getenv(EnvUser), Fingerprint: getenv(EnvFingerprint), RemoteAddr: getenv(EnvRemoteAddr), Via: getenv(EnvVia),
		RelayedBy: getenv(EnvRelayedBy), Transport: getenv(EnvTransport)}, nil
}

// RepoFromDir names the repository at dir, which must be ROOT/ORG/REPO.git.
func RepoFromDir(root, dir string) (names.RepoPath, error) {
	if r, err := filepath.EvalSymlinks(root); err == nil {
		root = r
	}
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		dir = d
	}
	rel, err := filepath.Rel(root, dir)
	if err != nil || strings.HasPrefix(rel, "..") {
		return names.RepoPath{}, fmt.Errorf("%s is not a cpm repository", dir)
	}
	if !strings.HasSuffix(rel, ".git") {
		return names.RepoPath{}, fmt.Errorf("%s is not a cpm repository", dir)
	}
	return names.ParseRepoPath(filepath.ToSlash(rel))
}

// Ancestry answers whether old is an ancestor of new (a fast-forward).
type Ancestry func(ctx context.Context, old, new string) (bool, error)

// GitAncestry asks git in dir, with the hook's environment so that objects
// still in the push's quarantine are visible. A failure to find out is an
// error, never "not a fast-forward" (see repos.IsAncestor).
func GitAncestry(dir string) Ancestry {
	return func(ctx context.Context, old, new string) (bool, error) {
		return repos.IsAncestor(ctx, dir, os.Environ(), old, new)
	}
}

// Identify looks the pusher up again, so that a key removed during the
// push is refused. A local pusher has no identity: the caller does not
// check a local push at all.
func Identify(ctx context.Context, c access.Checker, p Pusher) (access.Identity, error) {
	var id access.Identity
	var err error
	switch {
	case p.Cert != nil:
		id, err = c.IdentifyUser(ctx, p.User)
	case p.TokenID != 0:
		id, err = c.IdentifyTokenID(ctx, p.TokenID)
		if err != nil {
			return access.Identity{}, &access.Error{Kind: access.Denied, Reason: "token is no longer valid", Err: err}
		}
	default:
		id, err = c.IdentifyID(ctx, p.KeyID)
	}
	if err != nil {
		return access.Identity{}, &access.Error{Kind: access.Denied, Reason: "key is no longer registered", Err: err}
	}
	id.Via = p.Via // a forwarded push carries write at most
	return id, nil
}

// Check decides every update of a push made by id (from Identify in the
// hook, or the gateway's own session identity for a merge); the first
// refusal is the error.
func Check(ctx context.Context, c access.Checker, id access.Identity, repo names.RepoPath, updates []Update, ff Ancestry) error {
	var err error
	refs := make([]authz.RefUpdate, 0, len(updates))
	for _, u := range updates {
		ru := authz.RefUpdate{Ref: u.Ref, Create: u.Create(), Delete: u.Delete()}
		if !ru.Create && !ru.Delete {
			if ru.FastForward, err = ff(ctx, u.Old, u.New); err != nil {
				// Not knowing is not "no": the push fails as a fault, and
				// is not refused as needing a force-push permission.
				return &access.Error{Kind: access.Internal, Repo: repo.String(), Ref: u.Ref, Err: err}
			}
		}
		refs = append(refs, ru)
	}
	return c.DecideRefs(ctx, id, repo, refs)
}

// Record writes the accepted push to the audit log.
func Record(ctx context.Context, st *store.Store, p Pusher, repo names.RepoPath, updates []Update) error {
	refs := make([]string, 0, len(updates))
	for _, u := range updates {
		refs = append(refs, fmt.Sprintf("%s %s..%s", u.Ref, short(u.Old), short(u.New)))
	}
	details := map[string]any{"refs": refs}
	if p.Fingerprint != "" {
		details["key"] = p.Fingerprint
	}
	if p.Cert != nil {
		details["cert_serial"], details["cert_key_id"] = p.Cert.Serial, p.Cert.KeyID
	}
	if p.Transport != "" {
		details["transport"] = p.Transport
	}
	if p.TokenID != 0 {
		details["token"] = p.TokenID
	}
	// A neighbour that forwarded the push, else the node that relayed it.
	via := cmp.Or(p.Via, p.RelayedBy)
	return st.Record(ctx, store.Actor{Name: p.User, RemoteAddr: p.RemoteAddr, Via: via}, "push", repo.String(), details)
}

func short(id string) string {
	if zero(id) {
		return "0"
	}
	return id[:12]
}

// RunLocal runs the repository's own hooks from hooks/NAME.d/, in name
// order, each with the same input and environment env (nil: this
// process's); the first failure stops them.
func RunLocal(ctx context.Context, dir, name string, env []string, input []byte, stdout, stderr io.Writer) error {
	d := filepath.Join(dir, "hooks", name+".d")
	entries, err := os.ReadDir(d)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || info.Mode().Perm()&0o111 == 0 || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		cmd := exec.CommandContext(ctx, filepath.Join(d, e.Name()))
		cmd.Dir, cmd.Env = dir, env
		cmd.Stdin = bytes.NewReader(input)
		cmd.Stdout, cmd.Stderr = stdout, stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s.d/%s: %w", name, e.Name(), err)
		}
	}
	return nil
}

// WriterOf is who accepts a write to repo in this data directory: the
// zero Writer outside a cluster or for a repository without a primary,
// else this node (DATA/node) under the epoch the gateway passed in
// EnvEpoch, or, for a push made on the server itself, the epoch now.
func WriterOf(ctx context.Context, st *store.Store, dir datadir.Dir, repo names.RepoPath, getenv func(string) string) (store.Writer, error) {
	self, err := dir.NodeName()
	if err != nil || self == "" {
		return store.Writer{}, err
	}
	p, err := st.Placement(ctx, self, repo.Org, repo.Repo)
	if err != nil {
		return store.Writer{}, err
	}
	if !p.Clustered() {
		return store.Writer{}, nil
	}
	node, err := st.NodeByName(ctx, self)
	if err != nil {
		return store.Writer{}, err
	}
	w := store.Writer{Node: node.ID, Epoch: p.Epoch}
	if e := getenv(EnvEpoch); e != "" {
		if w.Epoch, err = strconv.ParseInt(e, 10, 64); err != nil || w.Epoch < 0 {
			return store.Writer{}, fmt.Errorf("bad %s %q", EnvEpoch, e)
		}
	}
	return w, nil
}
