package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"cpm/internal/admin"
	"cpm/internal/remote"
	"cpm/internal/replkey"
	"cpm/internal/store"
)

type serverCmd struct {
	Add       serverAddCmd       `cmd:"" help:"Add a backup server or neighbour, pinning its host key."`
	List      serverListCmd      `cmd:"" help:"List servers."`
	Remove    serverRemoveCmd    `cmd:"" help:"Remove a server (its replicas are left alone)."`
	Check     serverCheckCmd     `cmd:"" help:"Connect and report: a backup's rsync, git, free space and writable path; a neighbour's node, version and ping; the replication lag."`
	Pubkey    serverPubkeyCmd    `cmd:"" help:"Print the public key cpm uses to reach servers."`
	Approve   serverApproveCmd   `cmd:"" help:"Let syncs go to a server found by discovery."`
	Set       serverSetCmd       `cmd:"" help:"Change what a server replicates and how (--repos, --refs, --bwlimit, --compress, --every), or re-pin its host key (--host-key)."`
	RotateKey serverRotateKeyCmd `cmd:"" name:"rotate-key" help:"Replace cpm's replication key on every server without locking anyone out."`
}

type serverRotateKeyCmd struct {
	JSON bool `name:"json" help:"Print JSON."`
}

func (c serverRotateKeyCmd) Run(e *env, svc *admin.Service) error {
	r, err := replkey.Rotator{Store: svc.Store, Actor: svc.Actor}.Rotate(e.ctx, e.dir, true)
	if err != nil {
		return err
	}
	if c.JSON {
		return printJSON(e.stdout, r)
	}
	fmt.Fprintf(e.stdout, "old key %s\nnew key %s\n", r.OldFP, r.NewFP)
	rows := make([][]string, 0, len(r.Servers))
	pending := 0
	var refused []string
	for _, s := range r.Servers {
		if s.State != "done" {
			pending++
		}
		if s.Refused {
			refused = append(refused, s.Server+": "+s.Error)
		}
		rows = append(rows, []string{s.Server, s.State, s.Error})
	}
	if err := printTable(e.stdout, []string{"SERVER", "KEY", "PROBLEM"}, rows); err != nil {
		return err
	}
	if r.Finished {
		fmt.Fprintln(e.stdout, "rotation finished: every server takes the new key only")
		return nil
	}
	fmt.Fprintf(e.stdout, "rotation under way: %d servers not switched yet keep the old key until they are reached; the workers carry on, or run server rotate-key again\n", pending)
	if len(refused) > 0 {
		// A server that answers but will not switch never finishes on its
		// own: say so with a failing exit.
		return fmt.Errorf("%d servers refuse the new key (%s); make their authorized_keys writable by their ssh user (install -o USER -m 600) or give its path with server set NAME --authorized-keys, then run server rotate-key again",
			len(refused), strings.Join(refused, "; "))
	}
	return nil
}

// scopeFlags are a server's scope and transfer settings; unset flags
// leave a value alone (server set) or take the default (server add).
type scopeFlags struct {
	Repos    *string        `placeholder:"PATTERNS" help:"Only these repositories, e.g. 'acme/*,tools/cli'; empty for all."`
	Refs     *string        `placeholder:"PATTERNS" help:"Only these refs on the server, e.g. 'refs/heads/main,refs/tags/*'; empty for all. Not a secrecy boundary: every object of the repository is still shipped, so commits only on other refs are there and can be fetched by id; keep a repository away with --repos."`
	BWLimit  *int           `name:"bwlimit" placeholder:"KBPS" help:"Cap transfers to this server at KiB/s (0: no cap)."`
	Compress *int           `placeholder:"LEVEL" help:"rsync compression level, 0 (none) to 9."`
	Every    *time.Duration `placeholder:"DURATION" help:"Compare every replica with its source this often and repair what differs (default 24h)."`
	AuthKeys *string        `name:"authorized-keys" placeholder:"PATH" help:"A backup's authorized_keys, relative to the ssh user's home (default .ssh/authorized_keys); server rotate-key edits it."`
}

func (f scopeFlags) scope() admin.ServerScope {
	return admin.ServerScope{Repos: f.Repos, Refs: f.Refs, BWLimitKBps: f.BWLimit, Compress: f.Compress, Every: f.Every, AuthorizedKeys: f.AuthKeys}
}

type serverSetCmd struct {
	Name    string  `arg:"" help:"Server name."`
	HostKey *string `name:"host-key" placeholder:"LINE" help:"Re-pin the server's host key: a public key line, or '' to fetch it from the server and confirm its fingerprint. Lifts a block caused by a host key mismatch."`
	Yes     bool    `help:"With --host-key '': accept the fetched host key without asking."`
	scopeFlags
}

func (c serverSetCmd) Run(e *env, svc *admin.Service) error {
	sc := c.scope()
	sc.HostKey = c.HostKey
	srv, err := svc.SetServer(e.ctx, e.dir, c.Name, sc, confirmHostKey(e, c.Name, c.Yes))
	if err != nil {
		return err
	}
	if c.HostKey != nil {
		fmt.Fprintf(e.stdout, "%s: host key %s pinned; its queue runs again\n", srv.Name, remote.Fingerprint(srv.HostKey))
	}
	fmt.Fprintf(e.stdout, "%s: repos %s, refs %s, bwlimit %s, compress %d, every %s; from its next sync\n",
		srv.Name, orAll(srv.RepoPatterns), orAll(srv.RefPatterns), bwlimit(srv.BWLimitKBps), srv.Compress,
		time.Duration(srv.EverySeconds)*time.Second)
	return nil
}

func orAll(s string) string {
	if s == "" {
		return "all"
	}
	return s
}

func bwlimit(k int) string {
	if k == 0 {
		return "none"
	}
	return strconv.Itoa(k) + " KiB/s"
}

type serverAddCmd struct {
	Name    string `arg:"" help:"Server name."`
	Host    string `required:"" help:"Host name or address."`
	Port    int    `default:"22" help:"ssh port."`
	User    string `default:"cpm" help:"ssh user on the server."`
	Path    string `default:"/var/lib/cpm/replicas" help:"Absolute directory for replicas (PATH/ORG/REPO.git)."`
	Role    string `required:"" enum:"backup,neighbor" help:"backup or neighbor."`
	HostKey string `name:"host-key" placeholder:"LINE" help:"The server's public host key line (e.g. its ssh_host_ed25519_key.pub)."`
	PeerKey string `name:"peer-key" placeholder:"LINE" help:"For a neighbour: its replication key (its cpm-admin server pubkey); with it, once approved, it may deliver its replicas here."`
	Yes     bool   `help:"Accept the host key fetched from the server without asking."`
	scopeFlags
}

// confirmHostKey shows a fetched host key's fingerprint and asks whether
// it is the server's: yes when --yes was given, no when nobody can answer.
func confirmHostKey(e *env, server string, yes bool) func(fp string) bool {
	return func(fp string) bool {
		fmt.Fprintf(e.stdout, "%s presents host key %s\n", server, fp)
		if yes {
			return true
		}
		if f, ok := e.stdin.(*os.File); !ok || !term.IsTerminal(int(f.Fd())) {
			return false
		}
		fmt.Fprint(e.stdout, "Is this the server's key (compare on the server with ssh-keygen -lf)? [y/N] ")
		line, _ := bufio.NewReader(e.stdin).ReadString('\n')
		return strings.EqualFold(strings.TrimSpace(line), "y") || strings.EqualFold(strings.TrimSpace(line), "yes")
	}
}

func (c serverAddCmd) Run(e *env, svc *admin.Service) error {
	srv, err := svc.AddServer(e.ctx, e.dir, admin.ServerSpec{
		Name: c.Name, Host: c.Host, Port: c.Port, User: c.User, Path: c.Path, Role: store.Role(c.Role), HostKey: c.HostKey,
		PeerKey: c.PeerKey, Scope: c.scope(),
	}, confirmHostKey(e, fmt.Sprintf("%s:%d", c.Host, c.Port), c.Yes))
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "added %s %s (%s@%s:%d:%s); every repository is queued for it\n", srv.Role, srv.Name, srv.User, srv.Host, srv.Port, srv.Path)
	return nil
}

type serverListCmd struct {
	JSON bool `name:"json" help:"Print a JSON array."`
}

func (c serverListCmd) Run(e *env, svc *admin.Service) error {
	servers, err := svc.ServerStatuses(e.ctx)
	if err != nil {
		return err
	}
	if c.JSON {
		return printJSON(e.stdout, servers)
	}
	rows := make([][]string, 0, len(servers))
	var fixes []string
	for _, s := range servers {
		state := s.Line()
		path := s.Path
		if s.Role == store.Neighbor {
			// A neighbour keeps replicas in its own repository root; what
			// matters is whether it may deliver its own here.
			path = "(its own)"
			if s.PeerFingerprint != "" && s.Approved {
				state += "; delivers replicas here"
			}
		}
		if s.KeyState != "" {
			state += "; key rotation: " + s.KeyState
		}
		if s.Fix != "" {
			fixes = append(fixes, s.Name+": "+s.Fix)
		}
		rows = append(rows, []string{s.Name, string(s.Role), s.User + "@" + s.Host + ":" + strconv.Itoa(s.Port), path,
			orAll(s.RepoPatterns), orAll(s.RefPatterns), bwlimit(s.BWLimitKBps), strconv.Itoa(s.Compress),
			(time.Duration(s.EverySeconds) * time.Second).String(), state})
	}
	defer func() {
		for _, f := range fixes {
			fmt.Fprintln(e.stdout, "fix "+f)
		}
	}()
	if err := printTable(e.stdout, []string{"NAME", "ROLE", "ADDRESS", "PATH", "REPOS", "REFS", "BWLIMIT", "COMPRESS", "EVERY", "STATE"}, rows); err != nil {
		return err
	}
	// The caps on transfers at once are the workers' settings.
	if conf, _, err := e.flags.Resolve(nil); err == nil && len(servers) > 0 {
		fmt.Fprintf(e.stdout, "transfers at once: %d in all (workers), %d per server (per_target)\n", conf.Workers, conf.PerTarget)
	}
	return nil
}

type serverRemoveCmd struct {
	Name string `arg:"" help:"Server name."`
}

func (c serverRemoveCmd) Run(e *env, svc *admin.Service) error {
	if err := svc.RemoveServer(e.ctx, e.dir, c.Name); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "removed server %s; its replicas are untouched\n", c.Name)
	return nil
}

type serverCheckCmd struct {
	Name string `arg:"" help:"Server name."`
	JSON bool   `name:"json" help:"Print JSON."`
}

func (c serverCheckCmd) Run(e *env, svc *admin.Service) error {
	res, err := svc.CheckServer(e.ctx, e.dir, c.Name)
	if err != nil {
		return err
	}
	if c.JSON {
		return printJSON(e.stdout, res)
	}
	if res.Unblocked != "" {
		fmt.Fprintf(e.stdout, "unblocked: it was blocked (%s); this check passed, so its queue runs again\n", res.Unblocked)
	}
	lag := fmt.Sprintf("%s; %d repositories pending, lag %s", res.State, res.Pending, (time.Duration(res.LagSeconds) * time.Second).String())
	if res.Cause != "" {
		lag += "\ncause:    " + res.Cause
	}
	if res.Fix != "" {
		lag += "\nfix:      " + res.Fix
	}
	if res.Role == store.Neighbor {
		fmt.Fprintf(e.stdout, "server:   %s\nnode:     %s\nversion:  %s\nping:     %.1f ms\nsync:     %s\n",
			res.Server, res.Node, res.Version, res.PingMS, lag)
		return nil
	}
	defer fmt.Fprintf(e.stdout, "sync:     %s\n", lag)
	rsync := res.Rsync
	if rsync == "" {
		rsync = "(not installed: cpm copies with tar over ssh, without delta transfer)"
	}
	fmt.Fprintf(e.stdout, "server:   %s\nrsync:    %s\ngit:      %s\nfree:     %d MiB\nwritable: %s\n",
		res.Server, rsync, orNone(res.Git), res.FreeKiB/1024, yesNo(res.Writable))
	switch {
	case !res.Writable:
		return fmt.Errorf("server %s cannot hold replicas: its path is not writable", res.Server)
	case res.Git == "":
		return fmt.Errorf("server %s cannot verify replicas: install git there", res.Server)
	}
	return nil
}

func orWord(s, word string) string {
	if s == "" {
		return word
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "(not installed)"
	}
	return s
}

type serverPubkeyCmd struct{}

func (serverPubkeyCmd) Run(e *env) error {
	k, err := replkey.PublicKey(e.dir)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, k)
	return nil
}
