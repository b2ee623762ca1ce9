package main

import (
	"fmt"
	"strings"

	"cpm/internal/admin"
	"cpm/internal/ondemand"
)

type repoCmd struct {
	Create    repoCreateCmd    `cmd:"" help:"Create a repository (bare, HEAD on main)."`
	List      repoListCmd      `cmd:"" help:"List repositories."`
	Delete    repoDeleteCmd    `cmd:"" help:"Delete a repository (it is moved to the trash)."`
	Set       repoSetCmd       `cmd:"" help:"Make a repository public or private, or change its description."`
	Grant     repoGrantCmd     `cmd:"" help:"Give a user read, write or admin on a repository."`
	Revoke    repoRevokeCmd    `cmd:"" help:"Take a user's grant away."`
	Protect   repoProtectCmd   `cmd:"" help:"Protect refs matching a pattern from force-push and deletion."`
	Unprotect repoUnprotectCmd `cmd:"" help:"Remove a protected ref pattern."`
	DeployKey deployKeyCmd     `cmd:"" name:"deploy-key" help:"Manage keys bound to one repository."`
	DeployTok deployTokenCmd   `cmd:"" name:"deploy-token" help:"Make access tokens bound to one repository (HTTP(S)); token list and token revoke manage them."`
	Where     repoWhereCmd     `cmd:"" help:"Where a repository lives in the cluster: its primary, its replicas, each one's generation and lag."`
	Move      repoMoveCmd      `cmd:"" help:"Make another node of the cluster the repository's primary, with no failed push; waits until it is."`
}

type repoCreateCmd struct {
	Repo        string `arg:"" name:"ORG/REPO" help:"Repository to create."`
	Public      bool   `help:"Anyone with a key may read it; anonymous git:// too."`
	Description string `placeholder:"TEXT" help:"One-line description."`
}

func (c repoCreateCmd) Run(e *env, svc *admin.Service) error {
	r, dir, err := svc.CreateRepo(e.ctx, c.Repo, c.Public, c.Description)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "created %s at %s\n", r.FullName(), dir)
	return nil
}

type repoSetCmd struct {
	Repo        string  `arg:"" name:"ORG/REPO" help:"Repository to change."`
	Public      bool    `xor:"visibility" help:"Anyone with a key may read it; anonymous git:// too."`
	Private     bool    `xor:"visibility" help:"Only those with a role or grant may read it."`
	Description *string `placeholder:"TEXT" help:"One-line description."`
}

func (c repoSetCmd) Run(e *env, svc *admin.Service) error {
	var public *bool
	if c.Public || c.Private {
		public = &c.Public
	}
	r, err := svc.SetRepo(e.ctx, c.Repo, public, c.Description)
	if err != nil {
		return err
	}
	vis := "private"
	if r.Public {
		vis = "public"
	}
	fmt.Fprintf(e.stdout, "%s: %s, description %q\n", r.FullName(), vis, r.Description)
	return nil
}

type repoListCmd struct {
	Org  string `arg:"" optional:"" help:"Only this organisation's repositories."`
	On   string `placeholder:"SERVER" help:"List what this backup or neighbour holds for this node instead: each replica's refs fingerprint, and whether it matches ours."`
	JSON bool   `name:"json" help:"Print a JSON array."`
}

// repoJSON is a repository as `repo list --json` prints it.
type repoJSON struct {
	FullName    string `json:"full_name"`
	Org         string `json:"org"`
	Name        string `json:"name"`
	Public      bool   `json:"public"`
	Description string `json:"description"`
	CreatedAt   string `json:"created_at"`
}

func (c repoListCmd) Run(e *env, svc *admin.Service) error {
	if c.On != "" {
		return c.listOn(e, svc)
	}
	repos, err := svc.Repos(e.ctx, c.Org)
	if err != nil {
		return err
	}
	if c.JSON {
		out := make([]repoJSON, 0, len(repos))
		for _, r := range repos {
			out = append(out, repoJSON{r.FullName(), r.Org, r.Name, r.Public, r.Description, r.CreatedAt.Format("2006-01-02T15:04:05Z")})
		}
		return printJSON(e.stdout, out)
	}
	rows := make([][]string, 0, len(repos))
	for _, r := range repos {
		vis := "private"
		if r.Public {
			vis = "public"
		}
		rows = append(rows, []string{r.FullName(), vis, r.Description})
	}
	return printTable(e.stdout, []string{"REPOSITORY", "VISIBILITY", "DESCRIPTION"}, rows)
}

type repoDeleteCmd struct {
	Repo string `arg:"" name:"ORG/REPO" help:"Repository to delete."`
}

func (c repoDeleteCmd) Run(e *env, svc *admin.Service) error {
	t, err := svc.DeleteRepo(e.ctx, c.Repo)
	if err != nil {
		return err
	}
	if t.Path == "" {
		fmt.Fprintf(e.stdout, "deleted %s (it was not on disk)\n", t.Repo)
		return nil
	}
	fmt.Fprintf(e.stdout, "deleted %s; moved to %s\n", t.Repo, t.Path)
	return nil
}

type repoGrantCmd struct {
	Repo string `arg:"" name:"ORG/REPO" help:"Repository."`
	User string `arg:"" help:"User name."`
	Perm string `arg:"" enum:"read,write,admin" help:"read, write or admin."`
}

func (c repoGrantCmd) Run(e *env, svc *admin.Service) error {
	if err := svc.Grant(e.ctx, c.Repo, c.User, c.Perm); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "granted %s on %s to %s\n", c.Perm, c.Repo, c.User)
	return nil
}

type repoRevokeCmd struct {
	Repo string `arg:"" name:"ORG/REPO" help:"Repository."`
	User string `arg:"" help:"User name."`
}

func (c repoRevokeCmd) Run(e *env, svc *admin.Service) error {
	if err := svc.Revoke(e.ctx, c.Repo, c.User); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "revoked %s's grant on %s\n", c.User, c.Repo)
	return nil
}

type repoProtectCmd struct {
	Repo    string `arg:"" name:"ORG/REPO" help:"Repository."`
	Pattern string `arg:"" name:"REF-PATTERN" help:"Full ref name; * matches within one path segment."`
}

func (c repoProtectCmd) Run(e *env, svc *admin.Service) error {
	if err := svc.Protect(e.ctx, c.Repo, c.Pattern); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "protected %s in %s\n", c.Pattern, c.Repo)
	return nil
}

type repoUnprotectCmd struct {
	Repo    string `arg:"" name:"ORG/REPO" help:"Repository."`
	Pattern string `arg:"" name:"REF-PATTERN" help:"A pattern given to repo protect."`
}

func (c repoUnprotectCmd) Run(e *env, svc *admin.Service) error {
	if err := svc.Unprotect(e.ctx, c.Repo, c.Pattern); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "unprotected %s in %s\n", c.Pattern, c.Repo)
	return nil
}

type deployKeyCmd struct {
	Add    deployKeyAddCmd    `cmd:"" help:"Bind a key to a repository (read-only unless --write)."`
	List   deployKeyListCmd   `cmd:"" help:"List a repository's deploy keys."`
	Remove deployKeyRemoveCmd `cmd:"" help:"Remove a deploy key by fingerprint."`
}

type deployKeyAddCmd struct {
	Repo  string `arg:"" name:"ORG/REPO" help:"Repository."`
	File  string `arg:"" help:"Public key file; - reads stdin."`
	Write bool   `help:"Allow pushes."`
}

func (c deployKeyAddCmd) Run(e *env, svc *admin.Service) error {
	k, err := admin.ReadKeyFile(c.File, e.stdin)
	if err != nil {
		return err
	}
	added, err := svc.AddDeployKey(e.ctx, c.Repo, k, c.Write)
	if err != nil {
		return err
	}
	mode := "read-only"
	if added.Write {
		mode = "read-write"
	}
	fmt.Fprintf(e.stdout, "added %s deploy key %s to %s\n", mode, added.Fingerprint, added.Repo)
	return nil
}

type deployKeyListCmd struct {
	Repo string `arg:"" name:"ORG/REPO" help:"Repository."`
	JSON bool   `name:"json" help:"Print a JSON array."`
}

func (c deployKeyListCmd) Run(e *env, svc *admin.Service) error {
	keys, err := svc.DeployKeys(e.ctx, c.Repo)
	if err != nil {
		return err
	}
	if c.JSON {
		return printJSON(e.stdout, keys)
	}
	rows := make([][]string, 0, len(keys))
	for _, k := range keys {
		rows = append(rows, []string{k.Fingerprint, k.Type, yesNo(k.Write), k.Comment})
	}
	return printTable(e.stdout, []string{"FINGERPRINT", "TYPE", "WRITE", "COMMENT"}, rows)
}

type deployKeyRemoveCmd struct {
	Fingerprint string `arg:"" help:"SHA256:… as ssh-keygen -lf prints it."`
}

func (c deployKeyRemoveCmd) Run(e *env, svc *admin.Service) error {
	k, err := svc.RemoveDeployKey(e.ctx, c.Fingerprint)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "removed deploy key %s of %s\n", k.Fingerprint, k.Repo)
	return nil
}

// listOn lists what server c.On holds for this node.
func (c repoListCmd) listOn(e *env, svc *admin.Service) error {
	all, err := svc.HeldOn(e.ctx, e.dir, c.On)
	if err != nil {
		return err
	}
	held := make([]ondemand.Held, 0, len(all))
	for _, h := range all {
		if org, _, _ := strings.Cut(h.Repo, "/"); c.Org == "" || strings.EqualFold(org, c.Org) {
			held = append(held, h)
		}
	}
	if c.JSON {
		return printJSON(e.stdout, held)
	}
	rows := make([][]string, 0, len(held))
	for _, h := range held {
		state := "matches"
		switch {
		case h.Error != "":
			state = "unreadable: " + h.Error
		case h.Local == "":
			state = "not here"
		case !h.Match:
			state = "differs (ours " + h.Local[:12] + ")"
		}
		rows = append(rows, []string{h.Repo, short(h.Fingerprint), state})
	}
	return printTable(e.stdout, []string{"REPOSITORY", "REFS", "STATE"}, rows)
}

// short is a fingerprint's first 12 digits, as sync commands print it.
func short(fp string) string {
	if len(fp) > 12 {
		return fp[:12]
	}
	return orDash(fp)
}
