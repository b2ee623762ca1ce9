package transfer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"cpm/internal/remote"
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
