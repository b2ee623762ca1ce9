// Package peer is the receiving side of replication between cpm nodes. A
// neighbour that this node approved connects with its replication key and
// runs `cpm-peer` commands through the gateway: it delivers the
// authorization metadata of its repositories (applied in one
// transaction), makes room for a replica, ships objects and refs with
// rsync in daemon mode into a module that only reaches that replica's
// objects and refs, and reads the refs back to verify. Nothing a peer
// sends can touch a repository's config or hooks, another origin's
// replicas, or this node's own repositories.
package peer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"cpm/internal/authz"
	"cpm/internal/names"
	"cpm/internal/replica"
	"cpm/internal/repos"
	"cpm/internal/store"
	"cpm/internal/version"
)

// MaxMeta bounds the metadata a peer may send: 100,000 keys are about
// 30 MB of JSON.
const MaxMeta = 64 << 20

// Receiver takes replicas from approved neighbours.
type Receiver struct {
	Store    *store.Store // this node's own database
	Replicas *replica.Set
	Disk     repos.Root
	TempDir  string
	Node     string // this node's name
	// Self is this node's name in its cluster (datadir NodeName); ""
	// outside a cluster, where no origin is a node.
	Self string
	// WriteTimeout bounds a synchronous write (cpm-peer receive-pack):
	// the node's sync_timeout and a little more; 0 is 15 s.
	WriteTimeout time.Duration
}

// Origin is who delivers: an approved neighbour, or a node of this
// node's own cluster (Node), whose copies are this node's own
// repositories rather than a neighbour's replicas.
type Origin struct {
	Name string
	Node bool
}

// copyDir resolves ORG/REPO as a copy that origin may deliver here
// (write) or read: a neighbour's replica, or for a node this node's own
// replica of a cluster repository.
func (r *Receiver) copyDir(ctx context.Context, origin Origin, rp names.RepoPath, write bool) (names.RepoPath, string, error) {
	if origin.Node {
		return r.nodeCopyDir(ctx, origin.Name, rp, write)
	}
	return r.replicaDir(ctx, origin.Name, rp)
}

// Hello is what `cpm-peer hello` answers: who this node is.
type Hello struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Hello writes this node's name and version.
func (r *Receiver) Hello(w io.Writer) error {
	return json.NewEncoder(w).Encode(Hello{Name: r.Node, Version: version.Version})
}

// ApplyMeta reads origin's metadata from in, checks every row, and makes
// it the origin's copy here in one transaction. Repositories that would
// shadow one of this node's own, or another origin's replica, are left
// out and named on out.
func (r *Receiver) ApplyMeta(ctx context.Context, origin string, in io.Reader, out io.Writer) error {
	var m store.Meta
	dec := json.NewDecoder(io.LimitReader(in, MaxMeta))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return fmt.Errorf("metadata from %s: %w", origin, err)
	}
	if err := checkMeta(m); err != nil {
		return fmt.Errorf("metadata from %s: %w", origin, err)
	}
	m, skipped, err := r.withoutConflicts(ctx, origin, m)
	if err != nil {
		return err
	}
	for _, s := range skipped {
		fmt.Fprintf(out, "skipped %s\n", s)
	}
	meta, err := r.Replicas.Store(ctx, origin, true)
	if err != nil {
		return err
	}
	if err := meta.ReplaceMeta(ctx, store.Actor{Name: "peer:" + origin}, m); err != nil {
		return fmt.Errorf("metadata from %s: %w", origin, err)
	}
	fmt.Fprintf(out, "applied generation %d: %d repositories, %d users, %d keys\n", m.Generation, len(m.Repos), len(m.Users), len(m.Keys))
	return nil
}

// checkMeta validates what the database's constraints do not: names that
// become paths and output, and keys whose fingerprint must be theirs.
func checkMeta(m store.Meta) error {
	for _, u := range m.Users {
		if err := names.Check(names.User, u.Name); err != nil {
			return err
		}
	}
	for _, o := range m.Orgs {
		if err := names.Check(names.Org, o.Name); err != nil {
			return err
		}
	}
	for _, rp := range m.Repos {
		if err := names.Check(names.Repo, rp.Name); err != nil {
			return err
		}
		if len(rp.Description) > 1024 {
			return fmt.Errorf("description of %s: too long", rp.Name)
		}
	}
	for _, k := range m.Keys {
		pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k.PublicKey))
		if err != nil {
			return fmt.Errorf("key %d: %w", k.ID, err)
		}
		if ssh.FingerprintSHA256(pub) != k.Fingerprint || pub.Type() != k.Type {
			return fmt.Errorf("key %d: fingerprint or type does not match the key", k.ID)
		}
	}
	for _, p := range m.Protected {
		if err := authz.CheckPattern(p.Pattern); err != nil {
			return err
		}
	}
	return nil
}

// withoutConflicts drops the repositories that origin may not replicate
// here, with their grants, deploy keys and protected refs.
func (r *Receiver) withoutConflicts(ctx context.Context, origin string, m store.Meta) (store.Meta, []string, error) {
	var skipped []string
	var err error
	m = m.Keep(func(org, repo string) bool {
		why, cerr := r.conflict(ctx, origin, org, repo)
		if cerr != nil {
			err = cerr
			return false
		}
		if why != "" {
			skipped = append(skipped, org+"/"+repo+": "+why)
		}
		return why == ""
	})
	return m, skipped, err
}

// conflict says why origin may not hold ORG/REPO here, or "".
func (r *Receiver) conflict(ctx context.Context, origin, org, repo string) (string, error) {
	f, err := r.Store.RepoFacts(ctx, 0, org, repo)
	if err != nil {
		return "", err
	}
	if f.RepoExists {
		return "a repository of this node has that name", nil
	}
	other, _, err := r.Replicas.Find(ctx, org, repo)
	if errors.Is(err, replica.ErrNotReplica) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if !strings.EqualFold(other, origin) {
		return "already a replica of " + other, nil
	}
	return "", nil
}

// replicaDir resolves ORG/REPO as origin's replica here and returns its
// canonical name and directory (which may not exist yet).
func (r *Receiver) replicaDir(ctx context.Context, origin string, rp names.RepoPath) (names.RepoPath, string, error) {
	why, err := r.conflict(ctx, origin, rp.Org, rp.Repo)
	if err != nil {
		return rp, "", err
	}
	if why != "" {
		return rp, "", fmt.Errorf("%s: %s", rp, why)
	}
	meta, err := r.Replicas.Store(ctx, origin, false)
	if err != nil {
		return rp, "", fmt.Errorf("%s has sent no metadata yet", origin)
	}
	f, err := meta.RepoFacts(ctx, 0, rp.Org, rp.Repo)
	if err != nil {
		return rp, "", err
	}
	if !f.RepoExists {
		return rp, "", fmt.Errorf("%s: not in the metadata %s sent", rp, origin)
	}
	canon := names.RepoPath{Org: f.Org, Repo: f.Repo}
	dir, err := r.Disk.Path(canon.Org, canon.Repo)
	return canon, dir, err
}

// Prepare makes an empty replica of ORG/REPO for origin, unless it is
// there already: a bare repository with this node's own config and hooks,
// which no transfer from the peer can replace.
func (r *Receiver) Prepare(ctx context.Context, origin Origin, rp names.RepoPath) error {
	canon, _, err := r.copyDir(ctx, origin, rp, true)
	if err != nil {
		return err
	}
	if _, err := r.Disk.Open(canon.Org, canon.Repo); err == nil {
		return nil
	}
	desc := "replica of " + canon.String() + " from " + origin.Name
	if origin.Node {
		desc = "" // one of the cluster's own repositories, as on its primary
	}
	_, err = r.Disk.Create(ctx, canon.Org, canon.Repo, desc)
	return err
}

// Refs writes the replica's HEAD, then `git show-ref --head`: the lines
// its fingerprint is computed from.
func (r *Receiver) Refs(ctx context.Context, origin Origin, rp names.RepoPath, w io.Writer) error {
	canon, _, err := r.copyDir(ctx, origin, rp, false)
	if err != nil {
		return err
	}
	dir, err := r.Disk.Open(canon.Org, canon.Repo)
	if err != nil {
		return err
	}
	head, err := os.ReadFile(filepath.Join(dir, "HEAD"))
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "git", "show-ref", "--head")
	cmd.Dir = dir
	cmd.Env = repos.Env(dir)
	out, err := cmd.Output()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) { // 1: no refs at all
		return fmt.Errorf("read refs of %s: %w", canon, err)
	}
	if _, err := fmt.Fprintf(w, "%s\n", strings.TrimSpace(string(head))); err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}

// Rsync prepares the server side of one rsync transfer with origin's
// replica of ORG/REPO: a daemon configuration with two modules, "objects"
// (the replica's objects, alternates excluded) and "repo" (HEAD,
// packed-refs and refs only), writable when write is set. The caller runs
// the command and then calls cleanup.
func (r *Receiver) Rsync(ctx context.Context, origin Origin, rp names.RepoPath, write bool) (*exec.Cmd, func(), error) {
	canon, _, err := r.copyDir(ctx, origin, rp, write)
	if err != nil {
		return nil, nil, err
	}
	dir, err := r.Disk.Open(canon.Org, canon.Repo)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: no replica yet; prepare it first", canon)
	}
	// Git LFS objects have a module of their own, which must exist.
	if err := os.MkdirAll(filepath.Join(dir, "lfs", "objects"), 0o755); err != nil {
		return nil, nil, fmt.Errorf("replica %s: %w", canon, err)
	}
	conf, err := r.writeConfig(dir, write)
	if err != nil {
		return nil, nil, err
	}
	cmd := exec.CommandContext(ctx, "rsync", "--server", "--daemon", "--config="+conf, ".")
	cmd.Dir = dir
	cmd.Env = repos.Env(dir)
	return cmd, func() { os.Remove(conf) }, nil
}

func (r *Receiver) writeConfig(dir string, write bool) (string, error) {
	// rsyncd.conf expands %VAR% in values and ends a value at a newline.
	if strings.ContainsAny(dir, "%\n\r") {
		return "", fmt.Errorf("repository path %q cannot go into an rsync module", dir)
	}
	readOnly := "yes"
	if write {
		readOnly = "no"
	}
	module := func(name, path, filter string) string {
		return "[" + name + "]\n" +
			"path = " + path + "\n" +
			"read only = " + readOnly + "\n" +
			"list = no\n" +
			"munge symlinks = yes\n" +
			"incoming chmod = Du=rwx,Dgo=rx,Fu=rw,Fgo=r\n" +
			"timeout = 600\n" +
			"filter = " + filter + "\n"
	}
	conf := fmt.Sprintf("use chroot = no\nuid = %d\ngid = %d\nlog file = /dev/null\ntransfer logging = no\n", os.Getuid(), os.Getgid()) +
		// The daemon enforces these whatever the client asks: a peer never
		// writes config, hooks or alternates, nor reads them.
		module("objects", filepath.Join(dir, "objects"), "- /info/alternates - /info/http-alternates") +
		module("repo", dir, "+ /HEAD + /packed-refs + /refs/*** + /.rsync-partial/*** - *") +
		module("lfs", filepath.Join(dir, "lfs"), "+ /objects/*** - *")
	f, err := os.CreateTemp(r.TempDir, "rsyncd-*.conf")
	if err != nil {
		return "", fmt.Errorf("rsync module: %w", err)
	}
	if _, err := f.WriteString(conf); err != nil {
		f.Close()
		os.Remove(f.Name())
		return "", fmt.Errorf("rsync module: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("rsync module: %w", err)
	}
	return f.Name(), nil
}

// Rekey takes origin's new replication key from in (one public key line)
// and makes it the only key origin is known by here. It runs over the old
// key's connection, which is what vouches for the new one.
func (r *Receiver) Rekey(ctx context.Context, origin string, in io.Reader) error {
	line, err := io.ReadAll(io.LimitReader(in, 16<<10))
	if err != nil {
		return err
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(line)
	if err != nil {
		return fmt.Errorf("new key: %w", err)
	}
	fp := ssh.FingerprintSHA256(pub)
	if _, err := r.Store.KeyOwnerByFingerprint(ctx, fp); err == nil {
		return fmt.Errorf("new key %s is registered here as a user's or deploy key", fp)
	}
	key := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
	return r.Store.SetPeerKey(ctx, store.Actor{Name: "peer:" + origin}, origin, key, fp)
}
