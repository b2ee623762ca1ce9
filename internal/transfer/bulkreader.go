package transfer

import (
	"bufio"
	"errors"
	"io"
	"strconv"
	"strings"

	"cpm/internal/names"
	"cpm/internal/remote"
)

// maxBulkLine bounds one line of a bulk answer: paths and ref lines are
// far shorter.
const maxBulkLine = 4096

// maxBulkAnswer bounds a whole bulk answer about n replicas.
func maxBulkAnswer(n int) int64 { return 256<<20 + int64(n)*(64<<10) }

// replicaParts gathers one replica's part of a bulk answer.
type replicaParts struct {
	objectsSeen, objectsOK bool
	unjudged               bool
	bytes                  int
	head                   string
	headSeen               bool
	packed, loose          map[string]string
}

// bulkReader parses a bulk answer (bulkStateCommand) for the replicas of
// want. Object files come grouped by replica (find walks depth first), so
// each replica's listing is judged against the local repository when the
// next replica's starts, and only one listing is held at a time; a
// replica whose files come in two groups is judged by each, so it can
// only be found lacking, never sound by mistake.
type bulkReader struct {
	s     *Syncer
	t     remote.Target
	want  map[string]names.RepoPath
	parts map[string]*replicaParts
	stats BulkStats
	// maxBytes bounds the whole answer (maxBulkAnswer).
	maxBytes int64
	// refsOnly: the answer lists ref files only (a batch's verification),
	// and no replica's objects are judged.
	refsOnly bool

	cur      string           // the replica whose object files are being read
	have     map[string]int64 // their sizes
	refRepo  string           // the replica and file whose lines are being read
	refFile  string
	fileLine int
}

func newBulkReader(s *Syncer, t remote.Target, repos []names.RepoPath) *bulkReader {
	b := &bulkReader{s: s, t: t, want: map[string]names.RepoPath{}, parts: map[string]*replicaParts{}, maxBytes: maxBulkAnswer(len(repos))}
	for _, rp := range repos {
		b.want[rp.String()] = rp
	}
	return b
}

// read parses the whole answer; an error means it cannot be used at all.
func (b *bulkReader) read(in io.Reader) error {
	r := bufio.NewReaderSize(in, 64<<10)
	refs := false
	for {
		line, err := readLine(r, maxBulkLine)
		if errors.Is(err, io.EOF) {
			return errors.New("the answer was cut short")
		}
		if err != nil {
			return err
		}
		b.stats.Bytes += int64(len(line) + 1)
		if b.stats.Bytes > b.maxBytes {
			// Lines that name nothing it should hold cost no memory but
			// time: a backup that never stops talking is not heard out.
			return errors.New("the answer is longer than its replicas can make it")
		}
		switch {
		case line == bulkEnd:
			b.flushObjects()
			return nil
		case line == "#refs" && !refs:
			b.flushObjects()
			refs = true
		case !refs:
			err = b.objectLine(line)
		default:
			err = b.refLine(line)
		}
		if err != nil {
			return err
		}
	}
}

// part is the replica's record, or nil for a name the target should not
// hold (counted, never used).
func (b *bulkReader) part(repo, line string) *replicaParts {
	if _, ok := b.want[repo]; !ok || repo == "" {
		b.ignore(line)
		return nil
	}
	p := b.parts[repo]
	if p == nil {
		p = &replicaParts{packed: map[string]string{}, loose: map[string]string{}}
		b.parts[repo] = p
	}
	p.bytes += len(line) + 1
	if p.bytes > MaxStatePerReplica {
		p.unjudged = true
	}
	return p
}

func (b *bulkReader) ignore(line string) {
	if b.stats.Ignored == 0 {
		b.stats.FirstIg = line
	}
	b.stats.Ignored++
}

// objectLine reads "SIZE PATH" (or wc's "SIZE total").
func (b *bulkReader) objectLine(line string) error {
	f := strings.Fields(line)
	if len(f) != 2 {
		return errors.New("not a line of object sizes: " + strconv.Quote(line))
	}
	size, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || size < 0 {
		return errors.New("not a size: " + strconv.Quote(line))
	}
	if f[1] == "total" {
		return nil
	}
	repo, rest, ok := splitReplicaPath(f[1])
	if !ok || !(strings.HasPrefix(rest, "objects/") || strings.HasPrefix(rest, "lfs/objects/")) {
		b.ignore(line)
		return nil
	}
	p := b.part(repo, line)
	if p == nil {
		return nil
	}
	if repo != b.cur {
		b.flushObjects()
		b.cur, b.have = repo, map[string]int64{}
	}
	if !p.unjudged {
		b.have[rest] = size
	}
	return nil
}

// flushObjects judges the listing just read against the local repository.
func (b *bulkReader) flushObjects() {
	if b.cur == "" {
		return
	}
	b.judge(b.cur, b.have)
	b.cur, b.have = "", nil
}

func (b *bulkReader) judge(repo string, have map[string]int64) {
	p := b.parts[repo]
	if p.unjudged {
		return
	}
	rp := b.want[repo]
	dir, err := b.s.Root.Open(rp.Org, rp.Repo)
	if err != nil {
		p.unjudged = true
		return
	}
	_, n, err := lacking(dir, have)
	if err != nil {
		p.unjudged = true
		return
	}
	p.objectsOK = n == 0 && (p.objectsOK || !p.objectsSeen)
	p.objectsSeen = true
}

// refLine reads "R PATH" (a ref file starts) or "L LINE" (its next line).
func (b *bulkReader) refLine(line string) error {
	if path, ok := strings.CutPrefix(line, "R "); ok {
		b.refRepo, b.refFile, b.fileLine = "", "", 0
		repo, rest, ok := splitReplicaPath(path)
		if !ok || !(rest == "HEAD" || rest == "packed-refs" || strings.HasPrefix(rest, "refs/")) {
			b.ignore(line)
			return nil
		}
		if b.part(repo, line) != nil {
			b.refRepo, b.refFile = repo, rest
		}
		return nil
	}
	text, ok := strings.CutPrefix(line, "L ")
	if !ok && line != "L" {
		return errors.New("not a line of ref files: " + strconv.Quote(line))
	}
	if b.refRepo == "" {
		return nil
	}
	p := b.part(b.refRepo, line)
	b.fileLine++
	p.refText(b.refFile, b.fileLine, text)
	return nil
}

// refText takes line n of the replica's ref file named file.
func (p *replicaParts) refText(file string, n int, text string) {
	switch {
	case file == "HEAD":
		if n == 1 {
			p.head, p.headSeen = strings.TrimSpace(text), true
		}
	case file == "packed-refs":
		if strings.HasPrefix(text, "#") || strings.HasPrefix(text, "^") {
			return
		}
		f := strings.Fields(text)
		if len(f) != 2 || !isObjectID(f[0]) || !strings.HasPrefix(f[1], "refs/") {
			p.unjudged = true
			return
		}
		p.packed[f[1]] = f[0]
	case n == 1:
		// A loose ref; a symbolic one is left to the check of its own.
		if id := strings.TrimSpace(text); isObjectID(id) {
			p.loose[file] = id
		} else {
			p.unjudged = true
		}
	}
}

// result turns the parts into states.
func (b *bulkReader) result() map[string]ReplicaState {
	out := make(map[string]ReplicaState, len(b.parts))
	for repo, p := range b.parts {
		if !p.objectsSeen && !p.unjudged && !b.refsOnly {
			b.judge(repo, nil) // a replica without a single object file
		}
		if p.unjudged {
			out[repo] = ReplicaState{Unjudged: true}
			continue
		}
		out[repo] = ReplicaState{Fingerprint: FingerprintOnly(p.showRef(), b.t.Refs), ObjectsOK: p.objectsOK}
	}
	return out
}

// showRef is what `git show-ref --head` prints for these ref files:
// loose refs over packed ones, and HEAD resolved.
func (p *replicaParts) showRef() []string {
	refs := map[string]string{}
	for name, id := range p.packed {
		refs[name] = id
	}
	for name, id := range p.loose {
		refs[name] = id
	}
	var lines []string
	for name, id := range refs {
		lines = append(lines, id+" "+name)
	}
	if target, ok := strings.CutPrefix(p.head, "ref: "); ok {
		if id, ok := refs[strings.TrimSpace(target)]; ok {
			lines = append(lines, id+" HEAD")
		}
	} else if p.headSeen && isObjectID(p.head) {
		lines = append(lines, p.head+" HEAD")
	}
	return lines
}
