package transfer

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"cpm/internal/names"
	"cpm/internal/remote"
)

// CheckBatch is Check of the replicas of repos on backup t in one rsync
// dry run (by content when deep): both sides read the same files as
// Check would, over one connection and one rsync start-up. The result has
// an entry for each repository of repos; the caller checks again, under
// the repository's lock, before it repairs anything, since a repack here
// may have made files the replica does not have yet.
func (s *Syncer) CheckBatch(ctx context.Context, t remote.Target, repos []names.RepoPath, deep bool) (map[string]Damage, error) {
	if t.Peer || s.lacksRsync(t.Name) {
		return nil, fmt.Errorf("check a batch on %s: only a backup with rsync", t.Name)
	}
	start := time.Now()
	var lines []string
	byRel := map[string]string{}
	for _, rp := range repos {
		dir, err := s.Root.Open(rp.Org, rp.Repo)
		if err != nil {
			return nil, err
		}
		rel := rp.Org + "/" + rp.Repo + ".git"
		byRel[rel] = rp.String()
		lines = append(lines, rel+"/objects/")
		if hasLFS(dir) {
			lines = append(lines, rel+"/lfs/objects/")
		}
	}
	list, err := os.CreateTemp(s.TempDir, "check-")
	if err != nil {
		return nil, err
	}
	defer os.Remove(list.Name())
	_, err = list.WriteString(strings.Join(lines, "\n") + "\n")
	if cerr := list.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	args := append(excludes(), "--files-from="+list.Name(), "--dry-run", "--itemize-changes")
	if deep {
		args = append(args, "--checksum")
	}
	r, err := s.rsyncArgs(ctx, t, append(args, s.Root.Dir+"/", remote.Dest(t, t.Path+"/")))
	if err != nil {
		return nil, fmt.Errorf("check a batch on %s: %w", t.Name, err)
	}
	out := make(map[string]Damage, len(repos))
	for _, rp := range repos {
		out[rp.String()] = Damage{}
	}
	for _, c := range r.Changes {
		flags, path, _ := strings.Cut(c, " ")
		parts := strings.SplitN(path, "/", 3)
		if len(flags) < 3 || flags[1] != 'f' || len(parts) < 3 {
			continue // directories, links
		}
		repo, ok := byRel[parts[0]+"/"+parts[1]]
		if !ok {
			continue
		}
		d := out[repo]
		if strings.HasPrefix(flags[2:], "+++++++") {
			d.Missing = append(d.Missing, parts[2])
		} else {
			d.Damaged = append(d.Damaged, parts[2])
		}
		out[repo] = d
	}
	for repo, d := range out {
		d.Duration = time.Since(start)
		out[repo] = d
	}
	return out, nil
}
