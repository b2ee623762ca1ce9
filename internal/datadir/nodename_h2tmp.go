package datadir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// NodeName is a stand-in for H1's datadir.NodeName (same signature and
// behaviour), so that this branch builds before H1's init lands; the
// merge with wt-h1 removes this file.
func (d Dir) NodeName() (string, error) {
	b, err := os.ReadFile(filepath.Join(string(d), "node"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("node name: %w", err)
	}
	name := strings.TrimSpace(string(b))
	if name == "" || strings.ContainsAny(name, " \t\n") {
		return "", fmt.Errorf("node name: %s holds no name", filepath.Join(string(d), "node"))
	}
	return name, nil
}
