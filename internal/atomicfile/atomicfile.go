// Package atomicfile replaces files whole: a reader (sshd reading
// authorized_keys, git reading a hook, ssh reading known_hosts) sees the
// old content or the new, never half of either.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path with body, mode mode, through a temporary file in
// the same directory renamed into place.
func Write(path string, body []byte, mode os.FileMode) error {
	return WriteOwned(path, body, mode, -1, -1)
}

// WriteOwned is Write with the file owned by uid and gid, unless uid is
// -1 (root replacing a file that belongs to another account).
func WriteOwned(path string, body []byte, mode os.FileMode, uid, gid int) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(body); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if uid != -1 {
		if err := tmp.Chown(uid, gid); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
