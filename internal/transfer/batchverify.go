package transfer

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"cpm/internal/names"
	"cpm/internal/printable"
	"cpm/internal/remote"
	"cpm/internal/shellquote"
)

// verifyRefsCommand prints, under backup t's path, the ref files of each
// replica of rels as a bulk answer's ref part ("R PATH", "L LINE"): POSIX
// tools only, one process or two for the whole batch. A ref file that
// cannot be read fails the command.
func verifyRefsCommand(t remote.Target, rels []string) string {
	var paths strings.Builder
	for _, rel := range rels {
		for _, f := range []string{"/HEAD", "/packed-refs", "/refs"} {
			paths.WriteString(" " + shellquote.Quote("./"+rel+f))
		}
	}
	return "cd " + shellquote.Quote(t.Path) + " || exit 1; LC_ALL=C; export LC_ALL; echo '#refs'; find" + paths.String() +
		` -type f -exec awk 'FNR==1 {print "R " FILENAME} {print "L " $0}' {} + || exit 1; echo '` + bulkEnd + "'"
}

// verifyBatch reads back, in one ssh command, the ref files of every
// repository of the batch that was sent, and fails those whose refs are
// not their snapshot's. Those the answer cannot settle (a symbolic ref, a
// part over the cap), or all of them when the answer is unusable, are
// verified as before, with git on the backup (verifyEach).
func (s *Syncer) verifyBatch(ctx context.Context, t remote.Target, entries []*batchEntry) {
	var rels []string
	var rps []names.RepoPath
	for _, e := range entries {
		if !e.failed {
			rels, rps = append(rels, e.rel()), append(rps, e.Repo)
		}
	}
	if len(rels) == 0 {
		return
	}
	out, err := s.Remote.Run(ctx, t, verifyRefsCommand(t, rels))
	if err != nil {
		s.verifyEach(ctx, t, entries)
		return
	}
	s.verifyEach(ctx, t, judgeRefs(t, entries, rps, out))
}

// judgeRefs fails each live entry whose replica's refs, as answer reads,
// are not its snapshot's, and returns those the answer does not settle
// (every live entry when it cannot be read at all).
func judgeRefs(t remote.Target, entries []*batchEntry, rps []names.RepoPath, answer []byte) []*batchEntry {
	var unsettled []*batchEntry
	b := newBulkReader(nil, t, rps)
	b.refsOnly = true
	if err := b.read(bytes.NewReader(answer)); err != nil {
		for _, e := range entries {
			if !e.failed {
				unsettled = append(unsettled, e)
			}
		}
		return unsettled
	}
	states := b.result()
	for _, e := range entries {
		if e.failed {
			continue
		}
		st, ok := states[e.Repo.String()]
		switch {
		case !ok || st.Unjudged:
			unsettled = append(unsettled, e)
		case st.Fingerprint != e.snap.Fingerprint:
			e.fail(ErrMismatch)
		}
	}
	return unsettled
}

// verifyEach reads back, in one ssh command running git show-ref for
// each, the refs of the repositories of the batch not failed yet, and
// fails those whose refs are not their snapshot's.
func (s *Syncer) verifyEach(ctx context.Context, t remote.Target, entries []*batchEntry) {
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
