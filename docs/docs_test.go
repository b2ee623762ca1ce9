package docs

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// root is the project's top directory, seen from this package.
const root = ".."

// skipDirs are not the project's sources: git's own files and build or
// demo output (see .gitignore).
var skipDirs = map[string]bool{".git": true, "bin": true, "cpm-data": true}

// projectFiles calls f with the path (relative to root) and content of
// every text file of the project.
func projectFiles(t *testing.T, f func(rel string, body []byte)) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && skipDirs[d.Name()] {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		body, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // gone while the walk ran
		}
		if err != nil {
			return err
		}
		if bytes.IndexByte(body, 0) >= 0 {
			return nil // not text
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		f(filepath.ToSlash(rel), body)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// inProject reports whether rel (slash-separated, relative to root)
// names a file inside the project.
func inProject(rel string) bool {
	rel = filepath.Clean(filepath.FromSlash(rel))
	if rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return false
	}
	fi, err := os.Stat(filepath.Join(root, rel))
	return err == nil && fi.Mode().IsRegular()
}

// resolves reports whether a document that the file from cites as ref is
// in the project: next to the citing file, or from the project's top.
func resolves(from, ref string) bool {
	return inProject(filepath.ToSlash(filepath.Join(filepath.Dir(from), ref))) || inProject(ref)
}

var (
	// citedDoc is a relative path or bare name of a Markdown document; an
	// absolute path (an installed copy, a URL) is not the project's.
	citedDoc = regexp.MustCompile(`(?:^|[^A-Za-z0-9_./:~-])([A-Za-z0-9_.-][A-Za-z0-9_./-]*\.md)\b`)
	// absoluteDoc is a document cited by an absolute path outside a URL
	// (file:///usr/share/doc/… in a unit file is an installed copy): a
	// path on one machine, never the project's.
	absoluteDoc = regexp.MustCompile(`(?:^|[^A-Za-z0-9_./:~-])(/[A-Za-z0-9_./-]*\.md)\b`)
	// mdLink is the target of a Markdown link.
	mdLink = regexp.MustCompile(`\]\(([^)\s#]+)`)
	// outside is where the project's first design notes lived, beside it
	// (spelt in two pieces so that this file does not cite it itself).
	outside = regexp.MustCompile(`\.\./` + `shared\b`)
)

// TestCitedDocumentsAreInTheProject fails when any file cites a document
// that the project does not have, such as a design note beside the
// checkout: the project must make sense on its own.
func TestCitedDocumentsAreInTheProject(t *testing.T) {
	files := 0
	projectFiles(t, func(rel string, body []byte) {
		files++
		for i, line := range strings.Split(string(body), "\n") {
			if outside.MatchString(line) {
				t.Errorf("%s:%d cites a file outside the project: %s", rel, i+1, strings.TrimSpace(line))
			}
			for _, m := range absoluteDoc.FindAllStringSubmatch(line, -1) {
				t.Errorf("%s:%d cites %s, a path on one machine; cite the project's own copy by its path from the top", rel, i+1, m[1])
			}
			for _, m := range citedDoc.FindAllStringSubmatch(line, -1) {
				if !resolves(rel, m[1]) {
					t.Errorf("%s:%d cites %s, which is not in the project (name it by its path from the top, such as docs/ARCHITECTURE.md)", rel, i+1, m[1])
				}
			}
			if !strings.HasSuffix(rel, ".md") {
				continue
			}
			for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				if !inProject(filepath.ToSlash(filepath.Join(filepath.Dir(rel), target))) {
					t.Errorf("%s:%d links to %s, which is not in the project", rel, i+1, target)
				}
			}
		}
	})
	if files < 50 {
		t.Fatalf("only %d files found under %s: not the project's top directory?", files, root)
	}
}

// TestReadmeLinksArchitecture: the README is where a reader starts.
func TestReadmeLinksArchitecture(t *testing.T) {
	body, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(body, []byte("](docs/ARCHITECTURE.md)")) {
		t.Error("README.md does not link docs/ARCHITECTURE.md")
	}
}

// cpmVariable is an environment variable of cpm's own.
var cpmVariable = regexp.MustCompile(`\bCPM_[A-Z][A-Z_]*[A-Z]\b`)

// TestArchitectureNamesEveryVariable fails when the code sets or reads a
// CPM_ variable that ARCHITECTURE.md does not name, so that its table of
// what travels between processes stays complete.
func TestArchitectureNamesEveryVariable(t *testing.T) {
	arch, err := os.ReadFile("ARCHITECTURE.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	projectFiles(t, func(rel string, body []byte) {
		code := strings.HasPrefix(rel, "cmd/") || strings.HasPrefix(rel, "internal/")
		if !code || !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") || strings.HasPrefix(rel, "internal/testworld/") {
			return
		}
		for _, v := range cpmVariable.FindAllString(string(body), -1) {
			if _, ok := seen[v]; !ok {
				seen[v] = rel
			}
		}
	})
	if len(seen) == 0 {
		t.Fatal("no CPM_ variable found in cmd/ and internal/")
	}
	for v, where := range seen {
		if !bytes.Contains(arch, []byte("`"+v+"`")) {
			t.Errorf("%s (in %s) is not named in docs/ARCHITECTURE.md", v, where)
		}
	}
}
