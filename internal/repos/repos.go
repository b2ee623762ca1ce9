// Package repos manages bare repositories on disk: creating them with
// cpm's settings and moving deleted ones to the trash.
//
// Paths are always built from names that the database returned, never
// from what a client typed, and are checked to stay under the root.
package repos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"cpm/internal/datadir"
	"cpm/internal/names"
	"cpm/internal/printable"
)

// DefaultBranch is the branch HEAD points to in a new repository.
const DefaultBranch = "main"

// Root is the folder holding ORG/REPO.git, with its trash beside it.
type Root struct {
	Dir   string
	Trash string
	Hooks Hooks // installed into every repository created
}

// Path returns the directory of ORG/REPO, refusing names that could
// escape the root.
func (r Root) Path(org, repo string) (string, error) {
	if err := names.Check(names.Org, org); err != nil {
		return "", err
	}
	if err := names.Check(names.Repo, repo); err != nil {
		return "", err
	}
	p := filepath.Join(r.Dir, org, repo+".git")
	if rel, err := filepath.Rel(r.Dir, p); err != nil || strings.HasPrefix(rel, "..") {
		return "", fmt.Errorf("repository path %s escapes %s", p, r.Dir)
	}
	return p, nil
}

// settings are applied to every repository cpm creates.
var settings = [][2]string{
	// Reject corrupt or malicious objects at the door.
	{"receive.fsckObjects", "true"},
	// Keep reflogs in bare repositories too: they are how a bad force-push
	// by an admin is undone.
	{"core.logAllRefUpdates", "true"},
	{"receive.advertisePushOptions", "true"},
	// cpm owns maintenance (a scheduled geometric repack under the
	// repository's lock, see internal/replicate), so that git never
	// repacks in the middle of a sync or forces a full resend.
	{"gc.auto", "0"},
	{"receive.autogc", "false"},
	// Partial clone (--filter=blob:none, tree:0) and the lazy fetches of
	// the objects it left out, which ask for objects by id. Reading is
	// decided per repository before git runs, so any object of it is fair.
	{"uploadpack.allowFilter", "true"},
	{"uploadpack.allowAnySHA1InWant", "true"},
}

// SetDescription rewrites the repository's description file (gitweb and
// cgit read it).
func (r Root) SetDescription(org, repo, description string) error {
	p, err := r.Path(org, repo)
	if err != nil {
		return err
	}
	if err := writeDescription(p, description); err != nil {
		return fmt.Errorf("describe %s/%s: %w", org, repo, err)
	}
	return nil
}

func writeDescription(dir, description string) error {
	return os.WriteFile(filepath.Join(dir, "description"), []byte(printable.Line(description)+"\n"), 0o644)
}

// Create makes a bare repository with HEAD on main. An existing directory
// is never reused or overwritten.
func (r Root) Create(ctx context.Context, org, repo, description string) (string, error) {
	p, err := r.Path(org, repo)
	if err != nil {
		return "", err
	}
	if _, err := os.Lstat(p); err == nil {
		return "", fmt.Errorf("create %s/%s: %s already exists on disk; move it away first", org, repo, p)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("create %s/%s: %w", org, repo, err)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return "", fmt.Errorf("create %s/%s: %w", org, repo, err)
	}
	// An empty --template keeps git's sample hooks and the user's
	// init.templateDir out of repositories that cpm manages.
	if err := Git(ctx, "", "init", "--quiet", "--bare", "--template=", "--initial-branch="+DefaultBranch, p); err != nil {
		os.RemoveAll(p)
		return "", fmt.Errorf("create %s/%s: %w", org, repo, err)
	}
	for _, kv := range settings {
		if err := Git(ctx, p, "config", kv[0], kv[1]); err != nil {
			os.RemoveAll(p)
			return "", fmt.Errorf("create %s/%s: %w", org, repo, err)
		}
	}
	if err := writeDescription(p, description); err != nil {
		os.RemoveAll(p)
		return "", fmt.Errorf("create %s/%s: %w", org, repo, err)
	}
	if r.Hooks.Bin != "" {
		if err := r.Hooks.Install(p); err != nil {
			os.RemoveAll(p)
			return "", fmt.Errorf("create %s/%s: %w", org, repo, err)
		}
	}
	return p, nil
}

// Adopt makes a bare repository that arrived from elsewhere (a backup's
// replica) one that cpm manages: its settings and hooks, as Create gives
// them.
func (r Root) Adopt(ctx context.Context, org, repo string) error {
	_, _, err := r.Repair(ctx, org, repo)
	return err
}

// Repair gives ORG/REPO the settings and hooks cpm's repositories have
// where they are missing or different (a repository made by an older
// cpm, or by hand), and reports which it changed. It reads the config
// with one git run, and runs git again only for what differs.
func (r Root) Repair(ctx context.Context, org, repo string) (settingsChanged, hooksInstalled bool, err error) {
	p, err := r.Open(org, repo)
	if err != nil {
		return false, false, err
	}
	have := map[string]string{}
	out, err := GitOutput(ctx, p, nil, "config", "--file", filepath.Join(p, "config"), "--list")
	if err != nil {
		return false, false, fmt.Errorf("repair %s/%s: %w", org, repo, err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			have[k] = v
		}
	}
	for _, kv := range settings {
		if have[strings.ToLower(kv[0])] == kv[1] {
			continue
		}
		if err := Git(ctx, p, "config", kv[0], kv[1]); err != nil {
			return settingsChanged, false, fmt.Errorf("repair %s/%s: %w", org, repo, err)
		}
		settingsChanged = true
	}
	if r.Hooks.Bin != "" && !r.Hooks.Installed(p) {
		if err := r.Hooks.Install(p); err != nil {
			return settingsChanged, false, fmt.Errorf("repair %s/%s: %w", org, repo, err)
		}
		hooksInstalled = true
	}
	return settingsChanged, hooksInstalled, nil
}

// MoveToTrash moves ORG/REPO.git to TRASH/ORG/REPO.git.<UTC time> and
// returns where it went. A repository missing on disk is not an error: the
// database entry can still be dropped, and there is nothing to lose.
func (r Root) MoveToTrash(org, repo string, now time.Time) (string, error) {
	p, err := r.Path(org, repo)
	if err != nil {
		return "", err
	}
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	dir := filepath.Join(r.Trash, org)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("trash %s/%s: %w", org, repo, err)
	}
	stamp := now.UTC().Format("20060102T150405.000000000Z")
	dst := filepath.Join(dir, repo+".git."+stamp)
	if err := os.Rename(p, dst); err != nil {
		return "", fmt.Errorf("trash %s/%s: %w", org, repo, err)
	}
	// An org folder left empty would look like an org on disk.
	os.Remove(filepath.Dir(p))
	return dst, nil
}

// Open returns the directory of a repository the database knows, after
// checking that it is a real directory inside the root: a symlink, or
// anything resolving outside the root, is not served.
func (r Root) Open(org, repo string) (string, error) {
	p, err := r.Path(org, repo)
	if err != nil {
		return "", err
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return "", fmt.Errorf("repository %s/%s: %w", org, repo, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("repository %s/%s: %s is not a directory", org, repo, p)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("repository %s/%s: %w", org, repo, err)
	}
	rootReal, err := filepath.EvalSymlinks(r.Dir)
	if err != nil {
		return "", fmt.Errorf("repository root: %w", err)
	}
	if rel, err := filepath.Rel(rootReal, real); err != nil || strings.HasPrefix(rel, "..") || rel != filepath.Join(org, repo+".git") {
		return "", fmt.Errorf("repository %s/%s resolves outside %s", org, repo, r.Dir)
	}
	return p, nil
}

// Restore undoes MoveToTrash, for when the database change that went with
// it could not be committed.
func (r Root) Restore(trashed, org, repo string) error {
	if trashed == "" {
		return nil
	}
	p, err := r.Path(org, repo)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
		return err
	}
	return os.Rename(trashed, p)
}

// Git runs git with a clean environment: no system or global config, no
// inherited GIT_* variables, so nothing from the operator's shell changes
// what cpm does to a repository.
func Git(ctx context.Context, dir string, args ...string) error {
	_, err := GitOutput(ctx, dir, nil, args...)
	return err
}

// GitOutput runs git like Git, with extra environment variables (such as
// an author), and returns its standard output.
func GitOutput(ctx context.Context, dir string, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	cmd.Env = append(Env(dir), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := printable.Line(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("git %s: %s", args[0], msg)
	}
	return out, nil
}

// Env is the environment cpm gives git.
func Env(home string) []string {
	if home == "" {
		home = os.TempDir()
	}
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin"
	}
	return []string{
		"PATH=" + path,
		"HOME=" + home,
		"LC_ALL=C",
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_TERMINAL_PROMPT=0",
	}
}

// RootOf is the repository root of a data directory, with hooks calling
// hookBin.
func RootOf(dir datadir.Dir, hookBin string) Root {
	return Root{
		Dir:   dir.Repos(),
		Trash: dir.Trash(),
		Hooks: Hooks{Bin: hookBin, DataDir: dir.String()},
	}
}
