package transfer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"cpm/internal/remote"
	"cpm/internal/shellquote"
)

// noRsync reports whether a failed rsync run says the target has no rsync.
func noRsync(err error) bool {
	var re *remote.Error
	return errors.As(err, &re) && (re.Code == 127 || strings.Contains(re.Stderr, "rsync: command not found") ||
		strings.Contains(re.Stderr, "rsync: not found"))
}

// tarCopier is the fallback for backups without rsync: the same order
// (objects the target lacks, packs before indexes, then refs) with tar
// over the same pinned ssh. Objects are immutable, so "lacks" is a name
// comparison.
type tarCopier struct{ s *Syncer }

func (c tarCopier) copy(ctx context.Context, j copyJob) (Result, error) {
	s, t, dir, refsDir, skelDir := c.s, j.target, j.dir, j.refsDir, j.skelDir
	dst := replicaPath(t, j.repo)
	q := shellquote.Quote
	if j.fresh {
		if _, err := s.tarTo(ctx, t, skelDir, nil, "mkdir -p "+q(dst)+" && cd "+q(dst)+" && if [ -e config ]; then cat >/dev/null; else tar -xf -; fi"); err != nil {
			return Result{}, err
		}
	}
	objects := filepath.Join(dir, "objects")
	data, index, err := s.lackedObjects(ctx, t, objects, dst)
	if err != nil {
		return Result{}, err
	}
	var res Result
	if files := append(data, index...); len(files) > 0 {
		n, err := s.tarTo(ctx, t, objects, files, "mkdir -p "+q(dst+"/objects")+" && tar -C "+q(dst+"/objects")+" -xf -")
		if err != nil {
			return res, err
		}
		res.Bytes, res.Files = n, int64(len(files))
	}
	if j.lfs {
		n, files, err := c.lfs(ctx, j, dst)
		if err != nil {
			return res, err
		}
		res.Bytes, res.Files = res.Bytes+n, res.Files+files
	}
	// Refs: unpack beside, then rename packed-refs and HEAD into place and
	// drop the loose refs they replace.
	n, err := s.tarTo(ctx, t, refsDir, []string{"HEAD", "packed-refs"}, "cd "+q(dst)+
		" && rm -rf .cpm-refs && mkdir .cpm-refs && tar -C .cpm-refs -xf - && mv -f .cpm-refs/packed-refs packed-refs"+
		" && find refs -type f -exec rm -f {} + && mv -f .cpm-refs/HEAD HEAD && rmdir .cpm-refs")
	res.Bytes += n
	return res, err
}

// deliver unpacks the file beside dir/name, in a folder of its own, and
// renames it into place. The folder is named for name, not for the local
// file, so that the next delivery clears what a cut one left.
func (c tarCopier) deliver(ctx context.Context, t remote.Target, local, dir, name string) (int64, error) {
	base := filepath.Base(local)
	q := shellquote.Quote
	in := ".cpm-in-" + filepath.Base(name)
	return c.s.tarTo(ctx, t, filepath.Dir(local), []string{base}, "cd "+q(dir)+" && rm -rf "+q(in)+" && mkdir "+q(in)+
		" && tar -C "+q(in)+" -xf - && mv -f "+q(in+"/"+base)+" "+q(name)+" && rmdir "+q(in))
}

// lfs sends the LFS objects the replica at dst lacks.
func (c tarCopier) lfs(ctx context.Context, j copyJob, dst string) (bytes, files int64, err error) {
	local := filepath.Join(j.dir, "lfs", "objects")
	data, _, err := c.s.lackedObjects(ctx, j.target, local, dst+"/lfs")
	if err != nil || len(data) == 0 {
		return 0, 0, err
	}
	there := shellquote.Quote(dst + "/lfs/objects")
	n, err := c.s.tarTo(ctx, j.target, local, data, "mkdir -p "+there+" && tar -C "+there+" -xf -")
	return n, int64(len(data)), err
}

// lackedObjects lists the object files under objects that the replica at
// dst lacks, data files (packs, loose objects) apart from index files, each
// sorted. Object files are immutable, so the name says it all.
func (s *Syncer) lackedObjects(ctx context.Context, t remote.Target, objects, dst string) (data, index []string, err error) {
	there := shellquote.Quote(dst + "/objects")
	out, err := s.Remote.Run(ctx, t, "mkdir -p "+there+" && cd "+there+" && find . -type f")
	if err != nil {
		return nil, nil, err
	}
	have := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		have[strings.TrimPrefix(strings.TrimSpace(l), "./")] = true
	}
	err = eachObjectFile(objects, func(rel string, d fs.DirEntry) error {
		switch {
		case have[rel]:
		case isIndexFile(d.Name()) || strings.HasPrefix(rel, "info/commit-graphs/"):
			index = append(index, rel)
		default:
			data = append(data, rel)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list objects: %w", err)
	}
	sort.Strings(data)
	sort.Strings(index)
	return data, index, nil
}

// eachObjectFile calls f with the path (relative to root, with slashes)
// of every file under root that travels to a replica: not git's
// quarantines and temporary files, locks or .keep files. A missing root
// has none.
func eachObjectFile(root string, f func(rel string, d fs.DirEntry) error) error {
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if strings.HasPrefix(name, "incoming-") || strings.HasPrefix(name, "tmp_") {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(name, "tmp_") || strings.HasSuffix(name, ".lock") || strings.HasSuffix(name, ".keep") {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		return f(filepath.ToSlash(rel), d)
	})
}

// tarTo streams a tar of files under dir (all of dir when files is nil)
// into command on t, and returns the bytes sent.
func (s *Syncer) tarTo(ctx context.Context, t remote.Target, dir string, files []string, command string) (int64, error) {
	args := []string{"-C", dir, "-cf", "-"}
	if files == nil {
		args = append(args, ".")
	} else {
		args = append(args, "--verbatim-files-from", "-T", "-")
	}
	tarCmd := exec.CommandContext(ctx, "tar", args...)
	if files != nil {
		tarCmd.Stdin = strings.NewReader(strings.Join(files, "\n") + "\n")
	}
	pipe, err := tarCmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	var tarErr bytes.Buffer
	tarCmd.Stderr = &tarErr
	sshArgs := append(s.Remote.SSHArgs(t), t.User+"@"+t.Host, remote.Fence(t, command))
	sshCmd := exec.CommandContext(ctx, "ssh", sshArgs...)
	counter := &countingReader{r: pipe}
	sshCmd.Stdin = counter
	var sshErr bytes.Buffer
	sshCmd.Stderr = &sshErr
	if err := tarCmd.Start(); err != nil {
		return 0, err
	}
	runErr := sshCmd.Run()
	io.Copy(io.Discard, pipe)
	waitErr := tarCmd.Wait()
	if runErr != nil {
		code := -1
		var ee *exec.ExitError
		if errors.As(runErr, &ee) {
			code = ee.ExitCode()
		}
		return counter.n, &remote.Error{Op: "tar to " + t.Name, Code: code, Stderr: sshErr.String()}
	}
	if waitErr != nil {
		return counter.n, fmt.Errorf("tar: %v: %s", waitErr, strings.TrimSpace(tarErr.String()))
	}
	return counter.n, nil
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
