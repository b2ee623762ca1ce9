// Command cpm-admin administers a cpm node: init; users, keys and SSH
// certificate authorities, organisations and members, repositories,
// grants, protected refs, deploy keys and access tokens; backup servers and neighbours
// (add, approve, check, key rotation, discovery); replication run and
// checked by hand (sync push, pull, verify, status, retry); promote of a
// backup, config show, doctor and the audit log. sshd also runs it in
// OpenSSH mode (authorized-keys, authorized-principals). docs/ARCHITECTURE.md
// shows where it sits among cpm's processes; --help lists every command.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"os/user"
	"strings"
	"syscall"

	"github.com/alecthomas/kong"
	"golang.org/x/term"

	"cpm/internal/admin"
	"cpm/internal/config"
	"cpm/internal/datadir"
	"cpm/internal/dburl"
	"cpm/internal/names"
	"cpm/internal/printable"
	"cpm/internal/remote"
	"cpm/internal/repos"
	"cpm/internal/store"
	"cpm/internal/wake"
)

type cli struct {
	config.Flags

	Init  initCmd  `cmd:"" help:"Create or update the data directory and database (idempotent)."`
	User  userCmd  `cmd:"" help:"Manage users."`
	Key   keyCmd   `cmd:"" help:"Manage users' ssh keys."`
	Org   orgCmd   `cmd:"" help:"Manage organisations and their members."`
	Repo  repoCmd  `cmd:"" help:"Manage repositories, grants, protected refs and deploy keys."`
	Token tokenCmd `cmd:"" help:"Manage access tokens for git over HTTP(S)."`
	Audit auditCmd `cmd:"" help:"Show the audit log, newest first."`

	Server serverCmd `cmd:"" help:"Manage backup servers and neighbours."`
	Node   nodeCmd   `cmd:"" help:"The nodes of this cluster (several cpm nodes on one PostgreSQL database)."`
	Sync   syncCmd   `cmd:"" help:"Run, verify and inspect replication."`

	Neighbor neighborCmd `cmd:"" help:"Find neighbour cpm nodes."`
	Promote  promoteCmd  `cmd:"" help:"Turn a backup's copy (repositories and database snapshot) into a full server."`
	Config   configCmd   `cmd:"" help:"Show the effective configuration."`
	Doctor   doctorCmd   `cmd:"" help:"Check the installation; exit non-zero when something is wrong."`

	MigrateStore migrateStoreCmd `cmd:"" name:"migrate-store" help:"Copy this SQLite installation's metadata into an empty PostgreSQL database."`

	AuthorizedKeys       authorizedKeysCmd       `cmd:"" name:"authorized-keys" help:"Print authorized_keys lines for OpenSSH forced-command mode."`
	AuthorizedPrincipals authorizedPrincipalsCmd `cmd:"" name:"authorized-principals" help:"Print the principals line for a user certificate (sshd's AuthorizedPrincipalsCommand with %t %k)."`
	CA                   caCmd                   `cmd:"" name:"ca" help:"Manage trusted SSH certificate authorities and revocations."`
}

// env is what a command runs with.
type env struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	dir    datadir.Dir
	// database is the database setting ("" for SQLite, or the URL).
	database string
	actor    store.Actor
	flags    config.Flags
	conf     config.Config
}

// terminal returns stdout when it is a terminal (for progress bars), else nil.
func (e *env) terminal() *os.File {
	if f, ok := e.stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return f
	}
	return nil
}

// open opens the data directory for a command that needs the database.
func (e *env) open() (*admin.Service, error) {
	hookBin, err := repos.HookBinBeside()
	if err != nil {
		return nil, err
	}
	svc, err := admin.Open(e.ctx, e.dir, e.database, e.actor, hookBin)
	if err != nil {
		return nil, err
	}
	// On a cluster node, what this command creates has it as primary.
	if err := svc.PlaceAs(e.ctx, e.dir, e.conf.Replicas, e.conf.Lease); err != nil {
		svc.Close()
		return nil, err
	}
	return svc, nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var c cli
	exit := -1
	parser, err := kong.New(&c,
		kong.Name("cpm-admin"),
		kong.Description("Administer a cpm git gateway."),
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { exit = code }),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	if err != nil {
		fmt.Fprintf(stderr, "cpm: %v\n", err)
		return 2
	}
	kctx, err := parser.Parse(args)
	if exit >= 0 {
		return exit // --help
	}
	if err != nil {
		fmt.Fprintf(stderr, "cpm: %s\n", printable.Line(err.Error()))
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e, err := newEnv(ctx, c.Flags, stdin, stdout)
	var svc *admin.Service
	if err == nil {
		// Commands that take a *admin.Service get the data dir opened for
		// them, once, and closed after they return.
		err = kctx.BindSingletonProvider(func() (*admin.Service, error) {
			s, err := e.open()
			svc = s
			return s, err
		})
	}
	if err == nil {
		err = kctx.Run(e)
	}
	if svc != nil {
		svc.Close()
		if err == nil {
			// Something may have changed that the servers' copy of the
			// metadata must follow: tell the workers, if they run.
			wake.Work(e.dir.WakeSocket())
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "cpm: %s\n", printable.Line(err.Error()))
		return 1
	}
	return 0
}

func newEnv(ctx context.Context, flags config.Flags, stdin io.Reader, stdout io.Writer) (*env, error) {
	conf, _, err := flags.Resolve(nil)
	if err != nil {
		return nil, err
	}
	dir, err := datadir.New(conf.DataDir)
	if err != nil {
		return nil, err
	}
	return &env{ctx: ctx, stdin: stdin, stdout: stdout, dir: dir, database: conf.Database, actor: localActor(), flags: flags, conf: conf}, nil
}

// localActor names the operator in the audit log by their login.
func localActor() store.Actor {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	return store.Actor{Name: "local:" + name}
}

type initCmd struct {
	NodeName  string `name:"node-name" placeholder:"NAME" help:"This node's name, as neighbours see it (default: the host name); with --advertise, its name in the cluster."`
	Advertise string `placeholder:"HOST:PORT" help:"Join the cluster of --database (PostgreSQL) as node --node-name; HOST:PORT is where the other nodes reach this node's ssh."`
}

func (c initCmd) Run(e *env) error {
	hookBin, err := repos.HookBinBeside()
	if err != nil {
		return err
	}
	spec := admin.ClusterSpec{NodeName: c.NodeName, Advertise: c.Advertise, Replicas: e.conf.Replicas, Lease: e.conf.Lease}
	clustered, err := admin.ClusterInit(e.dir, e.database, &spec)
	if err != nil {
		return err
	}
	st, repaired, err := admin.Init(e.ctx, e.dir, e.database, hookBin)
	if err != nil {
		return err
	}
	defer st.Close()
	if clustered {
		j, err := admin.JoinCluster(e.ctx, st, e.dir, e.actor, spec)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "node %s of the cluster, reached at %s:%d; cluster host key %s; %d replicas placed\n",
			j.Node.Name, j.Node.Host, j.Node.Port, j.HostKey, j.ReplicasAdded)
	} else if c.NodeName != "" {
		if err := names.Check(names.User, c.NodeName); err != nil {
			return fmt.Errorf("node name: %w", err)
		}
		if err := st.RenameNode(e.ctx, c.NodeName); err != nil {
			return err
		}
	}
	v, err := st.Version(e.ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "initialised %s (schema version %d)\n", e.dir, v)
	if st.Engine() == "postgres" {
		fmt.Fprintf(e.stdout, "database: %s (recorded in %s)\n", st.Path(), e.dir.DatabaseFile())
	}
	if repaired > 0 {
		fmt.Fprintf(e.stdout, "installed hooks in %d repositories\n", repaired)
	}
	return nil
}

type promoteCmd struct {
	From           string `placeholder:"DIR" help:"The backup's directory (the --path it was added with); default: the data dir itself."`
	Force          bool   `help:"Promote even if the backup lacks some repositories (they are created empty)."`
	AuthorizedKeys string `name:"authorized-keys" placeholder:"PATH" help:"The backup account's authorized_keys, where the old main's key is fenced (default: the one the old main knew, else ~/.ssh/authorized_keys of the backup directory's owner)."`
	JSON           bool   `name:"json" help:"Print JSON."`
}

func (c promoteCmd) Run(e *env) error {
	hookBin, err := repos.HookBinBeside()
	if err != nil {
		return err
	}
	from := c.From
	if from == "" {
		from = e.dir.String()
	}
	p, err := admin.Promote(e.ctx, e.dir, from, hookBin, c.Force, c.AuthorizedKeys, e.actor)
	if err != nil {
		return err
	}
	if c.JSON {
		return printJSON(e.stdout, p)
	}
	fmt.Fprintf(e.stdout, "promoted %s into %s: %d repositories, with the users, keys, organisations and permissions of the snapshot\n", p.From, e.dir, p.Repos)
	for _, m := range p.Missing {
		fmt.Fprintf(e.stdout, "created empty (not in the backup): %s\n", m)
	}
	if len(p.Self) > 0 {
		fmt.Fprintf(e.stdout, "removed %s from the server list: that is this node\n", strings.Join(p.Self, ", "))
	}
	if len(p.Servers) > 0 {
		fmt.Fprintf(e.stdout, "held %d servers (%s) until you review them: cpm-admin server list, then cpm-admin sync retry\n", len(p.Servers), strings.Join(p.Servers, ", "))
	}
	switch {
	case p.FenceError != "":
		fmt.Fprintf(e.stdout, "warning: the old main's key is not fenced: %s; %s stops it all the same\n", p.FenceError, remote.PromotedMarker)
	case p.FencedKeys == 0:
		fmt.Fprintf(e.stdout, "warning: the old main's key is not in %s; if it reaches this account another way, remove it there\n", p.Fenced)
	default:
		fmt.Fprintf(e.stdout, "fenced the old main: its key in %s can only say this node was promoted\n", p.Fenced)
	}
	fmt.Fprintf(e.stdout, "serve it with: cpm-shell serve --data-dir %s\n", e.dir)
	return nil
}

type configCmd struct {
	Show configShowCmd `cmd:"" help:"Print every setting, its value and where it came from (flag, env, file, default, or the data dir for the recorded database)."`
}

type configShowCmd struct {
	JSON bool `name:"json" help:"Print a JSON array."`
}

func (c configShowCmd) Run(e *env) error {
	_, vals, err := e.flags.Resolve(nil)
	if err != nil {
		return err
	}
	recorded, err := e.dir.Recorded()
	if err != nil {
		return err
	}
	for i, v := range vals {
		if v.Key == "database" && v.Value == "" && recorded != "" {
			vals[i].Value, vals[i].Source = dburl.Redact(recorded), config.FromDataDir
		}
	}
	if c.JSON {
		return printJSON(e.stdout, vals)
	}
	rows := make([][]string, 0, len(vals))
	for _, v := range vals {
		shown := v.Value
		if shown == "" {
			shown = "(empty)"
		}
		rows = append(rows, []string{v.Key, shown, string(v.Source), v.Env, v.Flag})
	}
	if e.flags.Config != "" {
		fmt.Fprintf(e.stdout, "file: %s\n", e.flags.Config)
	}
	return printTable(e.stdout, []string{"KEY", "VALUE", "FROM", "ENV", "FLAG"}, rows)
}

type doctorCmd struct {
	LagThreshold *string `name:"lag-threshold" config:"lag_threshold" placeholder:"DURATION" help:"Report replication lag above this (default 15m)."`
	VerifyEvery  *string `name:"verify-every" config:"verify_every" placeholder:"DURATION" help:"Report replicas whose last deep check is older than twice this (default 168h)."`
	Deep         bool    `help:"Compare every replica's object files by content now (reads them all, here and on every server)."`
	JSON         bool    `name:"json" help:"Print a JSON array."`
}

func (c doctorCmd) Run(e *env, svc *admin.Service) error {
	conf, _, err := e.flags.Resolve(config.Given(c))
	if err != nil {
		return err
	}
	findings := svc.Doctor(e.ctx, e.dir, admin.DoctorOptions{LagThreshold: conf.LagThreshold, VerifyEvery: conf.VerifyEvery, Deep: c.Deep,
		StaleAge: 2 * conf.MaxSessionTime, SyncReplicas: conf.SyncReplicas})
	failed := 0
	for _, f := range findings {
		if !f.OK {
			failed++
		}
	}
	if c.JSON {
		if err := printJSON(e.stdout, findings); err != nil {
			return err
		}
	} else {
		for _, f := range findings {
			mark := "ok  "
			if !f.OK {
				mark = "FAIL"
			}
			fmt.Fprintf(e.stdout, "%s  %-22s %s\n", mark, f.Check, f.Detail)
			if f.Fix != "" {
				fmt.Fprintf(e.stdout, "      %-22s fix: %s\n", "", f.Fix)
			}
		}
	}
	if failed > 0 {
		return fmt.Errorf("doctor: %d of %d checks failed", failed, len(findings))
	}
	return nil
}

type auditCmd struct {
	Limit int  `default:"50" help:"Entries to show; 0 for all."`
	JSON  bool `name:"json" help:"Print a JSON array."`
}

func (c auditCmd) Run(e *env, svc *admin.Service) error {
	entries, err := svc.Audit(e.ctx, c.Limit)
	if err != nil {
		return err
	}
	if c.JSON {
		return printJSON(e.stdout, entries)
	}
	rows := make([][]string, 0, len(entries))
	for _, a := range entries {
		rows = append(rows, []string{a.At.Format("2006-01-02T15:04:05Z"), a.Actor, a.Action, a.Target, details(a.Details)})
	}
	return printTable(e.stdout, []string{"TIME", "ACTOR", "ACTION", "TARGET", "DETAILS"}, rows)
}
