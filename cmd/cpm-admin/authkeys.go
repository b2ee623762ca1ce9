package main

import (
	"errors"
	"fmt"

	"cpm/internal/admin"
	"cpm/internal/authkeys"
	"cpm/internal/repos"
	"cpm/internal/sshkey"
	"cpm/internal/store"
)

type authorizedKeysCmd struct {
	Fingerprint string `placeholder:"FP" help:"Print only the line for this key (for sshd's AuthorizedKeysCommand with %f)."`
}

func (c authorizedKeysCmd) Run(e *env, svc *admin.Service) error {
	shell, err := repos.BinaryBeside("cpm-shell")
	if err != nil {
		return err
	}
	var keys []store.Key
	if c.Fingerprint != "" {
		fp, err := sshkey.NormalizeFingerprint(c.Fingerprint)
		if err != nil {
			return err
		}
		k, err := svc.Store.KeyByFingerprint(e.ctx, fp)
		if errors.Is(err, store.ErrNotFound) {
			// sshd reads this as "no key": a comment, and success.
			fmt.Fprintf(e.stdout, "# no cpm key %s\n", fp)
			return nil
		}
		if err != nil {
			return err
		}
		keys = []store.Key{k}
	} else if keys, err = svc.Store.AllKeys(e.ctx); err != nil {
		return err
	}
	for _, k := range keys {
		line, err := authkeys.Line(shell, e.dir.String(), k.ID, k.PublicKey)
		if err != nil {
			return err
		}
		fmt.Fprintln(e.stdout, line)
	}
	return nil
}
