package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"cpm/internal/admin"
	"cpm/internal/certauth"
	"cpm/internal/printable"
	"cpm/internal/repos"
)

type caCmd struct {
	Add    caAddCmd    `cmd:"" help:"Trust an SSH certificate authority: user certificates it signs authenticate."`
	List   caListCmd   `cmd:"" help:"List the trusted certificate authorities."`
	Remove caRemoveCmd `cmd:"" help:"Stop trusting a certificate authority."`
	Revoke caRevokeCmd `cmd:"" help:"Install a key revocation list (ssh-keygen -k): what it lists no longer authenticates."`
}

type caAddCmd struct {
	Name string `arg:"" help:"A name for the authority."`
	File string `arg:"" help:"The authority's public key file; - reads stdin."`
}

func (c caAddCmd) Run(e *env, svc *admin.Service) error {
	var r io.Reader = e.stdin
	if c.File != "-" {
		f, err := os.Open(c.File)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	ca, err := svc.AddCA(e.ctx, e.dir, c.Name, r)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "trusting certificate authority %s (%s)\n", ca.Name, ca.Fingerprint)
	return nil
}

type caListCmd struct {
	JSON bool `name:"json" help:"Print a JSON array."`
}

func (c caListCmd) Run(e *env, svc *admin.Service) error {
	cas, err := svc.CAs(e.ctx)
	if err != nil {
		return err
	}
	if c.JSON {
		return printJSON(e.stdout, cas)
	}
	rows := make([][]string, 0, len(cas))
	for _, ca := range cas {
		rows = append(rows, []string{ca.Name, ca.Type, ca.Fingerprint, ca.CreatedAt.Format("2006-01-02")})
	}
	return printTable(e.stdout, []string{"NAME", "TYPE", "FINGERPRINT", "ADDED"}, rows)
}

type caRemoveCmd struct {
	Name string `arg:"" help:"The authority's name."`
}

func (c caRemoveCmd) Run(e *env, svc *admin.Service) error {
	if err := svc.RemoveCA(e.ctx, e.dir, c.Name); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "no longer trusting %s; its certificates are refused from the next connection\n", c.Name)
	return nil
}

type caRevokeCmd struct {
	File string `arg:"" help:"A key revocation list made with ssh-keygen -k."`
}

func (c caRevokeCmd) Run(e *env, svc *admin.Service) error {
	if err := svc.RevokeCerts(e.ctx, e.dir, c.File); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "installed %s as %s\n", c.File, e.dir.RevokedKeys())
	return nil
}

type userSetCmd struct {
	Name      string  `arg:"" help:"User name."`
	Principal *string `help:"The certificate principal that names this user (default: the user name); '' resets it."`
}

func (c userSetCmd) Run(e *env, svc *admin.Service) error {
	if c.Principal == nil {
		return errors.New("nothing to set; give --principal")
	}
	if err := svc.SetPrincipal(e.ctx, c.Name, *c.Principal); err != nil {
		return err
	}
	p := *c.Principal
	if p == "" {
		p = c.Name
	}
	fmt.Fprintf(e.stdout, "certificates with principal %s authenticate as %s\n", p, c.Name)
	return nil
}

// authorizedPrincipalsCmd is sshd's AuthorizedPrincipalsCommand for
// certificates (OpenSSH mode): %t %k.
type authorizedPrincipalsCmd struct {
	Type string `arg:"" help:"The certificate's type (sshd's %t)."`
	Cert string `arg:"" help:"The certificate, base64 (sshd's %k)."`
}

func (c authorizedPrincipalsCmd) Run(e *env, svc *admin.Service) error {
	shell, err := repos.BinaryBeside("cpm-shell")
	if err != nil {
		return err
	}
	line, err := svc.AuthorizedPrincipals(e.ctx, e.dir, shell, c.Type, c.Cert)
	if errors.Is(err, certauth.ErrRefused) {
		// sshd reads no line as "not authorized"; say why in its log.
		fmt.Fprintf(e.stdout, "# %s\n", printable.Line(err.Error()))
		fmt.Fprintf(os.Stderr, "cpm: %s\n", printable.Line(err.Error()))
		return nil
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, line)
	return nil
}
