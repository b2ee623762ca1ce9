package main

import (
	"fmt"
	"strconv"

	"cpm/internal/admin"
	"cpm/internal/sshkey"
)

type userCmd struct {
	Add    userAddCmd    `cmd:"" help:"Add a user."`
	List   userListCmd   `cmd:"" help:"List users."`
	Remove userRemoveCmd `cmd:"" help:"Remove a user with their keys, memberships and grants."`
	Set    userSetCmd    `cmd:"" help:"Change a user: the certificate principal that names them."`
}

type userAddCmd struct {
	Name  string `arg:"" help:"User name."`
	Admin bool   `help:"Make the user a site admin."`
	Key   string `placeholder:"FILE" help:"Public key file for the user's first key; - reads stdin."`
}

func (c userAddCmd) Run(e *env, svc *admin.Service) error {
	var key *sshkey.Key
	if c.Key != "" {
		k, err := admin.ReadKeyFile(c.Key, e.stdin)
		if err != nil {
			return err
		}
		key = &k
	}
	u, err := svc.AddUser(e.ctx, c.Name, c.Admin, key)
	if err != nil {
		return err
	}
	role := "user"
	if u.Admin {
		role = "site admin"
	}
	fmt.Fprintf(e.stdout, "added %s %s", role, u.Name)
	if key != nil {
		fmt.Fprintf(e.stdout, " with key %s", key.Fingerprint)
	}
	fmt.Fprintln(e.stdout)
	return nil
}

type userListCmd struct {
	JSON bool `name:"json" help:"Print a JSON array."`
}

func (c userListCmd) Run(e *env, svc *admin.Service) error {
	users, err := svc.Users(e.ctx)
	if err != nil {
		return err
	}
	if c.JSON {
		return printJSON(e.stdout, users)
	}
	rows := make([][]string, 0, len(users))
	for _, u := range users {
		rows = append(rows, []string{u.Name, yesNo(u.Admin), strconv.Itoa(u.Keys), u.CreatedAt.Format("2006-01-02")})
	}
	return printTable(e.stdout, []string{"NAME", "ADMIN", "KEYS", "CREATED"}, rows)
}

type userRemoveCmd struct {
	Name string `arg:"" help:"User name."`
}

func (c userRemoveCmd) Run(e *env, svc *admin.Service) error {
	if err := svc.RemoveUser(e.ctx, c.Name); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "removed user %s\n", c.Name)
	return nil
}

type keyCmd struct {
	Add      keyAddCmd      `cmd:"" help:"Register a public key for a user."`
	List     keyListCmd     `cmd:"" help:"List users' keys."`
	Remove   keyRemoveCmd   `cmd:"" help:"Remove a user's key by fingerprint."`
	Generate keyGenerateCmd `cmd:"" help:"Write a new ed25519 key pair (FILE 0600, FILE.pub 0644)."`
}

type keyAddCmd struct {
	User string `arg:"" help:"User name."`
	File string `arg:"" help:"Public key file; - reads stdin."`
}

func (c keyAddCmd) Run(e *env, svc *admin.Service) error {
	k, err := admin.ReadKeyFile(c.File, e.stdin)
	if err != nil {
		return err
	}
	added, err := svc.AddKey(e.ctx, c.User, k)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "added key %s (%s) for %s\n", added.Fingerprint, added.Type, added.User)
	return nil
}

type keyListCmd struct {
	User string `arg:"" optional:"" help:"Only this user's keys."`
	JSON bool   `name:"json" help:"Print a JSON array."`
}

func (c keyListCmd) Run(e *env, svc *admin.Service) error {
	keys, err := svc.Keys(e.ctx, c.User)
	if err != nil {
		return err
	}
	if c.JSON {
		return printJSON(e.stdout, keys)
	}
	rows := make([][]string, 0, len(keys))
	for _, k := range keys {
		rows = append(rows, []string{k.User, k.Fingerprint, k.Type, strconv.FormatInt(k.ID, 10), k.Comment})
	}
	return printTable(e.stdout, []string{"USER", "FINGERPRINT", "TYPE", "ID", "COMMENT"}, rows)
}

type keyRemoveCmd struct {
	Fingerprint string `arg:"" help:"SHA256:… as ssh-keygen -lf prints it."`
}

func (c keyRemoveCmd) Run(e *env, svc *admin.Service) error {
	k, err := svc.RemoveKey(e.ctx, c.Fingerprint)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "removed key %s of %s\n", k.Fingerprint, k.User)
	return nil
}

type keyGenerateCmd struct {
	File    string `arg:"" type:"path" help:"Private key path; the public key goes to FILE.pub."`
	Comment string `help:"Comment for the public key."`
}

func (c keyGenerateCmd) Run(e *env) error {
	k, err := sshkey.Generate(c.File, c.Comment)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "wrote %s and %s.pub (%s)\n", c.File, c.File, k.Fingerprint)
	return nil
}
