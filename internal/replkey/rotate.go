package replkey

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"cpm/internal/datadir"
	"cpm/internal/printable"
	"cpm/internal/remote"
	"cpm/internal/shellquote"
	"cpm/internal/sshkey"
	"cpm/internal/store"
	"cpm/internal/transfer"
)

// KeyRotation is the state of a replication key rotation.
type KeyRotation struct {
	Old, New string      `json:"-"`
	OldFP    string      `json:"old_key"`
	NewFP    string      `json:"new_key"`
	Servers  []ServerKey `json:"servers"`
	Finished bool        `json:"finished"`
}

// ServerKey is one server's place in a rotation.
type ServerKey struct {
	Server string `json:"server"`
	State  string `json:"state"` // old (not reached yet), next (takes the new key), done (old key removed)
	Error  string `json:"error,omitempty"`
	// Refused says the server answered but would not switch (its
	// authorized_keys not writable, the key not where it was said to be):
	// unlike a server that is down, waiting does not help.
	Refused bool `json:"refused,omitempty"`
}

// Rotator rotates the replication key as Actor, recording each step in
// Store.
type Rotator struct {
	Store *store.Store
	Actor store.Actor
}

// Rotate replaces cpm's replication key without locking anyone out: a
// new key is made (once), installed on every server next to the old one
// (a backup's authorized_keys; a neighbour is told the new key over the
// old one's connection), used for a server as soon as the server accepts
// it, and the old key is then removed there. A server that cannot be
// reached keeps working with the old key; the rotation finishes, and the
// new key becomes the only one, when every server has switched. start
// makes a new key if none is under way; without it, Rotate only
// continues a rotation (the workers do that when a server comes back).
func (s Rotator) Rotate(ctx context.Context, dir datadir.Dir, start bool) (KeyRotation, error) {
	// One rotation step at a time, whether cpm-admin or the workers run it.
	unlock, err := transfer.LockFile(filepath.Join(dir.Locks(), "rotate-key.lock"))
	if err != nil {
		return KeyRotation{}, err
	}
	defer unlock()
	next := dir.NextReplicationKey()
	if _, err := os.Stat(next); errors.Is(err, os.ErrNotExist) {
		if !start {
			return KeyRotation{Finished: true}, nil
		}
		if _, err := sshkey.Generate(next, "cpm replication"); err != nil {
			return KeyRotation{}, err
		}
		if err := s.Store.Record(ctx, s.Actor, "server.rotate-key", "*", map[string]any{"state": "started"}); err != nil {
			return KeyRotation{}, err
		}
	}
	var r KeyRotation
	if r.Old, err = PublicKey(dir); err != nil {
		return r, err
	}
	body, err := os.ReadFile(next + ".pub")
	if err != nil {
		return r, fmt.Errorf("new replication key: %w", err)
	}
	r.New = strings.TrimSpace(string(body))
	r.OldFP, r.NewFP = fingerprintOf(r.Old), fingerprintOf(r.New)
	servers, err := s.Store.Servers(ctx)
	if err != nil {
		return r, err
	}
	env := remote.ForDataDir(dir)
	all := true
	for _, srv := range servers {
		st := s.rotateOne(ctx, env, srv, r)
		r.Servers = append(r.Servers, st)
		if st.State != "done" {
			all = false
		}
	}
	if !all {
		return r, nil
	}
	if err := s.finishRotation(ctx, dir, env, servers); err != nil {
		return r, err
	}
	r.Finished = true
	return r, nil
}

func fingerprintOf(line string) string {
	k, err := remote.ParseHostKey(line)
	if err != nil {
		return "?"
	}
	return remote.Fingerprint(k)
}

// rotateOne moves one server as far along the rotation as it can go.
func (s Rotator) rotateOne(ctx context.Context, env remote.Env, srv store.Server, r KeyRotation) ServerKey {
	sk := ServerKey{Server: srv.Name, State: srv.KeyState}
	switch sk.State {
	case "done":
		return sk
	case "":
		sk.State = "old"
	}
	if srv.Role == store.Node {
		// Another node of the cluster (or this one) knows this node's key
		// from the shared database, where finishRotation records the new
		// one: nothing to install there, and nothing to record on its row.
		return ServerKey{Server: srv.Name, State: "done"}
	}
	if srv.Role == store.Neighbor && !srv.Approved {
		// Not in use: it learns the new key with discovery or server add.
		return s.markKey(ctx, sk, srv.Name, "done")
	}
	t := transfer.TargetOf(srv)
	old, next := t, t
	old.UseNext, next.UseNext = false, true
	probe := "true"
	if t.Peer {
		probe = "cpm-peer hello"
	}
	if srv.KeyState == "" {
		if _, err := env.Run(ctx, next, probe); err != nil {
			var err error
			if t.Peer {
				_, err = env.RunInput(ctx, old, "cpm-peer rekey", strings.NewReader(r.New+"\n"))
			} else {
				_, err = env.Run(ctx, old, installKey(srv.AuthorizedKeys, r.Old, r.New))
			}
			if err != nil {
				return sk.failed("install the new key", err)
			}
			if _, err := env.Run(ctx, next, probe); err != nil {
				return sk.failed("the server does not accept the new key", err)
			}
		}
		if sk = s.markKey(ctx, sk, srv.Name, "next"); sk.Error != "" {
			return sk
		}
		// Sessions over the old key's connection end with the old key.
		env.CloseMaster(old)
	}
	if t.Peer {
		// The neighbour swapped the keys in one step.
		return s.markKey(ctx, sk, srv.Name, "done")
	}
	if _, err := env.Run(ctx, next, removeKey(srv.AuthorizedKeys, r.Old)); err != nil {
		return sk.failed("remove the old key", err)
	}
	return s.markKey(ctx, sk, srv.Name, "done")
}

// failed records why step did not happen, and whether the server refused.
func (sk ServerKey) failed(step string, err error) ServerKey {
	sk.Error = step + ": " + printable.Line(err.Error())
	var re *remote.Error
	sk.Refused = !errors.As(err, &re) || !re.Unreachable()
	return sk
}

func (s Rotator) markKey(ctx context.Context, sk ServerKey, name, state string) ServerKey {
	if err := s.Store.SetKeyState(ctx, s.Actor, name, state); err != nil {
		sk.Error = err.Error()
		return sk
	}
	sk.State = state
	return sk
}

// installKey appends line to the authorized_keys file at path (relative
// to the remote home, or absolute) unless it is there; only in the file
// that holds the current key, so that a wrong path is an error, not a
// file sshd never reads.
func installKey(path, current, line string) string {
	f, l := shellquote.Quote(authorizedPath(path)), shellquote.Quote(line)
	return "f=" + f + `; grep -qF ` + shellquote.Quote(blob(current)) + ` "$f" 2>/dev/null || ` +
		`{ echo "cpm's current key is not in $f: give the server's authorized_keys with server set --authorized-keys" >&2; exit 3; }; ` +
		`{ grep -qxF ` + l + ` "$f" || printf '%s\n' ` + l + ` >> "$f"; }`
}

// blob is a key line's base64 field, which names the key whatever the
// options or comment around it.
func blob(line string) string {
	if fields := strings.Fields(line); len(fields) >= 2 {
		return fields[1]
	}
	return line
}

// removeKey drops every line holding the key's base64 blob from the
// authorized_keys file at path.
func removeKey(path, line string) string {
	f := shellquote.Quote(authorizedPath(path))
	return "f=" + f + `; { grep -vF ` + shellquote.Quote(blob(line)) + ` "$f" || true; } > "$f.cpm-new" && chmod 600 "$f.cpm-new" && mv "$f.cpm-new" "$f"`
}

func authorizedPath(p string) string {
	if p == "" {
		return store.DefaultAuthorizedKeys
	}
	return p
}

// finishRotation makes the new key the key once every server takes it and
// no longer the old one.
func (s Rotator) finishRotation(ctx context.Context, dir datadir.Dir, env remote.Env, servers []store.Server) error {
	next := dir.NextReplicationKey()
	// Every server takes the new key and no longer the old: the new key
	// becomes the key. Connections made with either file name go.
	for _, srv := range servers {
		t := transfer.TargetOf(srv)
		t.UseNext = false
		env.CloseMaster(t)
		t.UseNext = true
		env.CloseMaster(t)
	}
	for _, suffix := range []string{".pub", ""} {
		if err := os.Rename(next+suffix, dir.ReplicationKey()+suffix); err != nil {
			return fmt.Errorf("finish key rotation: %w", err)
		}
	}
	if err := s.recordNodeKey(ctx, dir); err != nil {
		return err
	}
	if err := s.Store.FinishKeyRotation(ctx, s.Actor); err != nil {
		return err
	}
	return nil
}

// recordNodeKey puts a cluster node's new key on its row, where the other
// nodes look it up when it connects (nothing outside a cluster).
func (s Rotator) recordNodeKey(ctx context.Context, dir datadir.Dir) error {
	name, err := dir.NodeName()
	if err != nil || name == "" {
		return err
	}
	line, err := PublicKey(dir)
	if err != nil {
		return err
	}
	key, err := remote.ParseHostKey(line)
	if err != nil {
		return fmt.Errorf("finish key rotation: %w", err)
	}
	return s.Store.SetNodeKey(ctx, s.Actor, name, key, remote.Fingerprint(key))
}
