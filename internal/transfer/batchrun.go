package transfer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"cpm/internal/printable"
	"cpm/internal/remote"
	"cpm/internal/shellquote"
)

// batchStep is one rsync run of a batch: for each repository still in it,
// the paths part lists (relative to src, one --files-from line each).
type batchStep struct {
	src  string
	part func(rel string) []string
	args []string
}

// batchSteps are rsyncSteps over a batch: skeletons (never overwriting),
// object data, object indexes, then the refs from the snapshots, which
// replace each replica's wholesale. LFS objects never travel in a batch
// (Batchable).
func batchSteps(s *Syncer, work string) []batchStep {
	passes := objectPasses()
	objects := func(rel string) []string { return []string{rel + "/objects/"} }
	return []batchStep{
		{work + "/skeleton/", func(rel string) []string { return []string{rel + "/"} }, []string{"--ignore-existing"}},
		{s.Root.Dir + "/", objects, passes[0]},
		{s.Root.Dir + "/", objects, passes[1]},
		{work + "/refs/", func(rel string) []string {
			return []string{rel + "/HEAD", rel + "/packed-refs", rel + "/refs/"}
		}, []string{"--checksum", "--delete-after"}},
	}
}

// batchRun runs one step for the repositories not failed yet. A failure
// that rsync pins on files fails their repositories only; any other
// failure of the run is returned.
func (s *Syncer) batchRun(ctx context.Context, t remote.Target, entries []*batchEntry, st batchStep, work string) error {
	var lines []string
	var live []*batchEntry
	for _, e := range entries {
		if !e.failed {
			live = append(live, e)
			lines = append(lines, st.part(e.rel())...)
		}
	}
	if len(live) == 0 {
		return nil
	}
	list, err := os.CreateTemp(work, "files-")
	if err != nil {
		return err
	}
	_, err = list.WriteString(strings.Join(lines, "\n") + "\n")
	if cerr := list.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	args := append([]string{"--files-from=" + list.Name(), "--itemize-changes"}, st.args...)
	res, err := s.rsyncArgs(ctx, t, append(args, st.src, remote.Dest(t, t.Path+"/")))
	var re *remote.Error
	if err != nil && !(errors.As(err, &re) && (re.Code == 23 || re.Code == 24) && pinFailures(live, re)) {
		return fmt.Errorf("%w: %w", errBatchRun, err)
	}
	countSent(live, res.Changes, st.src)
	return nil
}

// pinFailures fails the repositories that the lines of rsync's stderr
// name, and reports whether every line of it named one.
func pinFailures(live []*batchEntry, re *remote.Error) bool {
	var hit []*batchEntry
	var why []string
	sc := bufio.NewScanner(strings.NewReader(re.Stderr))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "rsync error: ") {
			continue
		}
		e := entryNamed(live, line)
		if e == nil {
			return false
		}
		hit, why = append(hit, e), append(why, line)
	}
	if len(hit) == 0 {
		return false
	}
	for i, e := range hit {
		// Its own line of stderr, with rsync's status: a retry soon mends
		// what a push or repack changed under rsync.
		e.fail(&remote.Error{Op: re.Op, Code: re.Code, Stderr: why[i]})
	}
	return true
}

// entryNamed is the repository whose folder the line names as a path
// (after a space, a quote or a slash, or at its start), or nil.
func entryNamed(live []*batchEntry, line string) *batchEntry {
	for _, e := range live {
		key := e.rel() + "/"
		for i := strings.Index(line, key); i >= 0; {
			if i == 0 || strings.ContainsRune(" \"/'", rune(line[i-1])) {
				return e
			}
			next := strings.Index(line[i+1:], key)
			if next < 0 {
				break
			}
			i += 1 + next
		}
	}
	return nil
}

// countSent adds to each repository's result the files rsync sent for it
// (itemized as ">f…") and their sizes.
func countSent(live []*batchEntry, changes []string, src string) {
	byRel := map[string]*batchEntry{}
	for _, e := range live {
		byRel[e.rel()] = e
	}
	for _, c := range changes {
		flags, path, _ := strings.Cut(c, " ")
		if !strings.HasPrefix(flags, ">f") {
			continue
		}
		parts := strings.SplitN(path, "/", 3)
		if len(parts) < 3 {
			continue
		}
		e := byRel[parts[0]+"/"+parts[1]]
		if e == nil {
			continue
		}
		e.Result.Files++
		if fi, err := os.Stat(filepath.Join(src, path)); err == nil {
			e.Result.Bytes += fi.Size()
		}
	}
}

// verifyBatch reads back, in one ssh command, the refs of every
// repository of the batch that was sent, and fails those whose refs are
// not their snapshot's.
func (s *Syncer) verifyBatch(ctx context.Context, t remote.Target, entries []*batchEntry) {
	var cmd strings.Builder
	cmd.WriteString("cd " + shellquote.Quote(t.Path) + " || exit 1; for d in")
	live := map[string]*batchEntry{}
	for _, e := range entries {
		if !e.failed {
			cmd.WriteString(" " + shellquote.Quote(e.rel()))
			live[e.rel()] = e
		}
	}
	if len(live) == 0 {
		return
	}
	// show-ref exits 1 when there are no refs at all; that is an answer.
	cmd.WriteString(`; do echo "R $d"; git -C "$d" show-ref --head; echo "E $?"; done`)
	out, err := s.Remote.Run(ctx, t, cmd.String())
	if err != nil {
		failAll(entries, fmt.Errorf("%w: verify: %w", errBatchRun, err))
		return
	}
	refs, err := parseShowRefs(string(out), live)
	if err != nil {
		failAll(entries, fmt.Errorf("verify on %s: %w", t.Name, err))
		return
	}
	for rel, e := range live {
		got, ok := refs[rel]
		if !ok || FingerprintOnly(got, t.Refs) != e.snap.Fingerprint {
			e.fail(ErrMismatch)
		}
	}
}

// parseShowRefs reads "R NAME", its show-ref lines and "E STATUS" for each
// repository of want; a repository whose show-ref failed, or whose part
// is over the cap, is absent from the result. Anything else is an error.
func parseShowRefs(out string, want map[string]*batchEntry) (map[string][]string, error) {
	got := map[string][]string{}
	cur, size := "", 0
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		switch {
		case strings.HasPrefix(line, "R "):
			cur, size = strings.TrimPrefix(line, "R "), 0
			if want[cur] == nil {
				return nil, fmt.Errorf("an answer for %q", printable.Line(cur))
			}
			got[cur] = []string{}
		case strings.HasPrefix(line, "E "):
			if line != "E 0" && line != "E 1" || size > MaxStatePerReplica {
				delete(got, cur)
			}
			cur = ""
		case cur != "":
			id, name, ok := strings.Cut(line, " ")
			if !ok || !isObjectID(id) || (name != "HEAD" && !strings.HasPrefix(name, "refs/")) {
				return nil, fmt.Errorf("not a ref line: %q", printable.Line(line))
			}
			size += len(line)
			if size <= MaxStatePerReplica {
				got[cur] = append(got[cur], line)
			}
		default:
			return nil, fmt.Errorf("not an answer: %q", printable.Line(line))
		}
	}
	return got, nil
}
