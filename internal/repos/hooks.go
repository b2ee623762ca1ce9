package repos

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"cpm/internal/atomicfile"
	"cpm/internal/shellquote"
)

// Hooks says how repositories call cpm-hook. Bin and DataDir are absolute,
// so a hook works whoever runs git in the repository.
type Hooks struct {
	Bin     string // path of cpm-hook
	DataDir string
}

// HookBinBeside returns the cpm-hook installed next to the running
// binary, which is how cpm is packaged and how the tests build it.
func HookBinBeside() (string, error) { return BinaryBeside("cpm-hook") }

// BinaryBeside returns the path of another cpm binary installed next to
// the running one.
func BinaryBeside(name string) (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find %s: %w", name, err)
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	bin := filepath.Join(filepath.Dir(exe), name)
	if fi, err := os.Stat(bin); err != nil || fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("%s not found next to %s; install the cpm binaries together", name, exe)
	}
	return bin, nil
}

// HookNames are the hooks cpm installs.
var HookNames = []string{"pre-receive", "post-receive"}

// hookMarker identifies a hook file written by cpm.
const hookMarker = "# cpm-managed hook"

func (h Hooks) script(name string) []byte {
	return []byte("#!/bin/sh\n" + hookMarker + ": cpm-hook checks and records the push, then runs " + name + ".d/*\n" +
		"exec " + shellquote.Always(h.Bin) + " " + name + " --data-dir " + shellquote.Always(h.DataDir) + "\n")
}

// Install writes cpm's hooks into the repository at dir. A hook that is not
// cpm's is kept: it moves to HOOK.d/, where cpm-hook runs it after its own
// checks. Running Install again repairs or updates cpm's hooks.
func (h Hooks) Install(dir string) error {
	if h.Bin == "" || h.DataDir == "" {
		return errors.New("install hooks: cpm-hook path and data dir must be set")
	}
	hooks := filepath.Join(dir, "hooks")
	if err := os.MkdirAll(hooks, 0o755); err != nil {
		return fmt.Errorf("install hooks in %s: %w", dir, err)
	}
	for _, name := range HookNames {
		p := filepath.Join(hooks, name)
		want := h.script(name)
		have, err := os.ReadFile(p)
		switch {
		case err == nil && bytes.Equal(have, want):
			continue
		case err == nil && !bytes.Contains(have, []byte(hookMarker)):
			if err := keepLocalHook(hooks, name); err != nil {
				return err
			}
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("install hooks in %s: %w", dir, err)
		}
		if err := atomicfile.Write(p, want, 0o755); err != nil {
			return fmt.Errorf("install hooks in %s: %w", dir, err)
		}
	}
	return nil
}

// keepLocalHook moves hooks/NAME to hooks/NAME.d/ under a name that does
// not clobber anything there.
func keepLocalHook(hooks, name string) error {
	d := filepath.Join(hooks, name+".d")
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	for i := 0; ; i++ {
		dst := filepath.Join(d, fmt.Sprintf("50-local-%s", name))
		if i > 0 {
			dst += fmt.Sprintf("-%d", i)
		}
		if _, err := os.Lstat(dst); errors.Is(err, fs.ErrNotExist) {
			return os.Rename(filepath.Join(hooks, name), dst)
		}
	}
}

// Installed reports whether cpm's hooks are in place and current.
func (h Hooks) Installed(dir string) bool {
	for _, name := range HookNames {
		have, err := os.ReadFile(filepath.Join(dir, "hooks", name))
		if err != nil || !bytes.Equal(have, h.script(name)) {
			return false
		}
	}
	return true
}
