// Package provision creates repositories: the database row and the bare
// repository on disk (HEAD on main, cpm's hooks and settings, the
// default protected refs) in one step, so that a failure leaves neither.
// cpm-admin's `repo create`, a push that creates its repository (the
// gateway) and a pull that restores one from a backup all create through
// it.
package provision

import (
	"context"
	"errors"
	"fmt"
	"os"
	"unicode"

	"cpm/internal/authz"
	"cpm/internal/names"
	"cpm/internal/repos"
	"cpm/internal/store"
)

// MaxDescription bounds a repository description.
const MaxDescription = 500

// CheckDescription accepts one line of printable text, at most
// MaxDescription bytes: it lands in the repository's description file,
// which web front ends show.
func CheckDescription(d string) error {
	if len(d) > MaxDescription {
		return fmt.Errorf("description longer than %d bytes", MaxDescription)
	}
	for _, r := range d {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return errors.New("description must be one line of printable text")
		}
	}
	return nil
}

// Repo records ORG/REPO as actor and creates its bare repository under
// disk with HEAD on main and the default protected refs. It returns the
// stored repository and its directory.
func Repo(ctx context.Context, st *store.Store, disk repos.Root, actor store.Actor, path string, public bool, description string) (store.Repo, string, error) {
	rp, err := names.ParseRepoPath(path)
	if err != nil {
		return store.Repo{}, "", err
	}
	if err := CheckDescription(description); err != nil {
		return store.Repo{}, "", err
	}
	var dir string
	r, err := st.CreateRepo(ctx, actor, store.NewRepo{
		Org: rp.Org, Name: rp.Repo, Public: public, Description: description,
		Protected: authz.DefaultProtected,
	}, func(r store.Repo) error {
		// The canonical spelling from the database names the directory.
		var err error
		dir, err = disk.Create(ctx, r.Org, r.Name, description)
		return err
	})
	if err != nil {
		if dir != "" {
			// The transaction failed after the repository was made: undo it.
			os.RemoveAll(dir)
		}
		return store.Repo{}, "", err
	}
	return r, dir, nil
}
