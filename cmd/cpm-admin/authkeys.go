package main

import (
	"errors"
	"fmt"

	"cpm/internal/admin"
	"cpm/internal/authkeys"
	"cpm/internal/printable"
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
			return c.printNode(e, svc, shell, fp)
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
	if c.Fingerprint != "" {
		return nil
	}
	lines, err := svc.NodeLines(e.ctx, shell, e.dir.String(), func(err error) {
		fmt.Fprintf(e.stderr, "cpm: warning: %s\n", printable.Line(err.Error()))
	})
	for _, l := range lines {
		fmt.Fprintln(e.stdout, l)
	}
	return err
}

// printNode prints the line of the cluster node whose replication key
// has fingerprint fp, or the comment that sshd reads as "no key".
func (c authorizedKeysCmd) printNode(e *env, svc *admin.Service, shell, fp string) error {
	n, err := svc.NodeKey(e.ctx, fp)
	if errors.Is(err, store.ErrNotFound) {
		fmt.Fprintf(e.stdout, "# no cpm key %s\n", fp)
		return nil
	}
	if err != nil {
		return err
	}
	return printNodeLine(e, shell, n)
}

func printNodeLine(e *env, shell string, n store.Server) error {
	line, err := authkeys.PeerLine(shell, e.dir.String(), n.PeerFingerprint, n.PeerKey)
	if err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	fmt.Fprintln(e.stdout, line)
	return nil
}
