package main

import (
	"fmt"
	"strconv"
	"time"

	"cpm/internal/admin"
	"cpm/internal/store"
)

type tokenCmd struct {
	Create tokenCreateCmd `cmd:"" help:"Make an access token for git over HTTP(S); it is printed once, alone on the last line."`
	List   tokenListCmd   `cmd:"" help:"List access tokens (never their secrets)."`
	Revoke tokenRevokeCmd `cmd:"" help:"Revoke an access token by its id; it stops working at once."`
}

type tokenCreateCmd struct {
	User     string   `arg:"" help:"The user the token speaks for; it never does more than the user may."`
	Name     string   `required:"" help:"What the token is for (shown by token list)."`
	Expires  string   `default:"90d" placeholder:"DURATION" help:"Lifetime: 90d, 12h, … or never."`
	Repo     []string `placeholder:"ORG/REPO" help:"Only this repository (repeat for more); default: every repository of the user."`
	ReadOnly bool     `name:"read-only" help:"Clone and fetch only, never push."`
}

func (c tokenCreateCmd) Run(e *env, svc *admin.Service) error {
	secret, t, err := svc.CreateToken(e.ctx, admin.NewToken{User: c.User, Name: c.Name, Expires: c.Expires, Repos: c.Repo, ReadOnly: c.ReadOnly})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "created token %d %q for %s (scope %s, expires %s); it is shown this once:\n", t.ID, t.Name, t.User, t.Scope, when(t.Expires))
	fmt.Fprintln(e.stdout, secret)
	return nil
}

type tokenListCmd struct {
	User string `arg:"" optional:"" help:"Only this user's tokens."`
	JSON bool   `name:"json" help:"Print a JSON array (id, user, name, scope, created, last_used, expires)."`
}

func (c tokenListCmd) Run(e *env, svc *admin.Service) error {
	tokens, err := svc.Tokens(e.ctx, c.User)
	if err != nil {
		return err
	}
	if c.JSON {
		return printJSON(e.stdout, tokens)
	}
	rows := make([][]string, 0, len(tokens))
	for _, t := range tokens {
		user := t.User
		if user == "" {
			user = "-"
		}
		rows = append(rows, []string{strconv.FormatInt(t.ID, 10), user, t.Name, t.Scope,
			t.Created.Format(time.DateTime), when(t.LastUsed), when(t.Expires)})
	}
	return printTable(e.stdout, []string{"ID", "USER", "NAME", "SCOPE", "CREATED", "LAST USED", "EXPIRES"}, rows)
}

func when(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return t.Format(time.DateTime)
}

type tokenRevokeCmd struct {
	ID string `arg:"" help:"The token's id, as token list shows it."`
}

func (c tokenRevokeCmd) Run(e *env, svc *admin.Service) error {
	t, err := svc.RevokeToken(e.ctx, c.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "revoked token %d %q of %s\n", t.ID, t.Name, owner(t))
	return nil
}

func owner(t store.Token) string {
	if t.Repo != "" {
		return t.Repo + " (deploy token)"
	}
	return t.User
}

type deployTokenCmd struct {
	Create deployTokenCreateCmd `cmd:"" help:"Make a token bound to one repository (read-only unless --write); printed once, alone on the last line."`
}

type deployTokenCreateCmd struct {
	Repo  string `arg:"" name:"ORG/REPO" help:"Repository."`
	Name  string `required:"" help:"What the token is for (shown by token list)."`
	Write bool   `help:"Allow pushes."`
}

func (c deployTokenCreateCmd) Run(e *env, svc *admin.Service) error {
	secret, t, err := svc.CreateDeployToken(e.ctx, c.Repo, c.Name, c.Write)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "created deploy token %d %q (scope %s); it is shown this once (revoke with token revoke %d):\n", t.ID, t.Name, t.Scope, t.ID)
	fmt.Fprintln(e.stdout, secret)
	return nil
}
