package peer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"cpm/internal/names"
	"cpm/internal/repos"
	"cpm/internal/transfer"
)

// ApplyPack is the fast form of ReceivePack (cpm-peer receive-pack
// --pack): the primary, which knows what this replica held after its
// last write, sends the ref updates (transfer.RefUpdate lines, an empty
// line) and then one pack of the objects the replica lacks. The replica
// stores the pack (fsck'd: it is a node's word, not the primary's
// repository), applies the updates in one transaction that checks every
// old value, and records w.Generation only when its refs are then exactly
// those of w.Fingerprint — the same checks, before and after, as
// ReceivePack. A replica that is not where the primary thought fails
// here and the primary falls back to ReceivePack.
func (r *Receiver) ApplyPack(ctx context.Context, origin Origin, rp names.RepoPath, w SyncWrite, in io.Reader) error {
	return r.applyPack(ctx, origin, rp, w, in, 0)
}

// applyPack is ApplyPack for the node of id self (0: read it).
func (r *Receiver) applyPack(ctx context.Context, origin Origin, rp names.RepoPath, w SyncWrite, in io.Reader, self int64) error {
	ctx, cancel := r.boundWrite(ctx)
	defer cancel()
	rw, canon, dir, err := r.openWrite(ctx, origin, rp, w, self)
	if err != nil {
		return err
	}
	defer rw.Rollback()
	if _, err := r.Disk.Open(canon.Org, canon.Repo); err != nil {
		return fmt.Errorf("%s: no copy here yet; send-pack brings it", canon)
	}
	br := bufio.NewReader(in)
	updates, err := transfer.ReadRefUpdates(br)
	if err != nil {
		return fmt.Errorf("%s: %w", canon, err)
	}
	if err := storePack(ctx, dir, br); err != nil {
		return fmt.Errorf("%s: %w", canon, err)
	}
	if err := updateRefs(ctx, dir, updates); err != nil {
		return fmt.Errorf("%s: %w", canon, err)
	}
	return commitWrite(ctx, rw, canon, dir, w)
}

// unpackLimit is git's transfer.unpackLimit default: smaller packs are
// stored as loose objects, as receive-pack would.
const unpackLimit = 100

// storePack reads one pack from in into the repository at dir, every
// object checked (--strict, as receive.fsckObjects asks of every push
// into cpm's repositories). A pack of no objects is read and dropped.
func storePack(ctx context.Context, dir string, in *bufio.Reader) error {
	var head [12]byte
	if _, err := io.ReadFull(in, head[:]); err != nil {
		return fmt.Errorf("read pack: %w", err)
	}
	if string(head[:4]) != "PACK" {
		return errors.New("read pack: not a pack")
	}
	count := binary.BigEndian.Uint32(head[8:])
	if count == 0 {
		_, err := io.CopyN(io.Discard, in, 20) // the checksum
		return err
	}
	args := []string{"unpack-objects", "-q", "--strict"}
	if count >= unpackLimit {
		args = []string{"index-pack", "--stdin", "--strict"}
	}
	cmd := exec.CommandContext(ctx, "git", append(replicaGit(), args...)...)
	cmd.Dir, cmd.Env = dir, repos.Env(dir)
	cmd.Stdin = io.MultiReader(bytes.NewReader(head[:]), in)
	// Killed at the write's bound, git is not waited for past a second
	// while a stalled primary's stream still holds the copy of its input.
	cmd.WaitDelay = time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", args[0], err, firstLine(out))
	}
	return nil
}

// refsTimeout bounds one ref transaction on a replica (it only writes
// files that are already local).
const refsTimeout = 30 * time.Second

// updateRefs applies updates in one transaction, each checked against
// its old value (zero: the ref must not exist yet).
func updateRefs(ctx context.Context, dir string, updates []transfer.RefUpdate) error {
	// A ref transaction runs to its end once started: killed halfway it
	// would leave packed-refs.lock behind, and every later write that
	// deletes a ref here would fail. Its input is all in memory.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refsTimeout)
	defer cancel()
	var stdin strings.Builder
	for _, u := range updates {
		fmt.Fprintf(&stdin, "update %s %s %s\n", u.Name, u.New, u.Old)
	}
	cmd := exec.CommandContext(ctx, "git", append(replicaGit(), "update-ref", "--stdin")...)
	cmd.Dir, cmd.Env = dir, repos.Env(dir)
	cmd.Stdin = strings.NewReader(stdin.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("update refs: %w: %s", err, firstLine(out))
	}
	return nil
}

func firstLine(b []byte) string {
	l, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return l
}
