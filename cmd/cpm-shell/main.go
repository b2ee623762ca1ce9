// Command cpm-shell serves git over ssh. `cpm-shell serve` runs the
// embedded SSH server (and the git:// listener); `cpm-shell key-ID` is the
// forced command OpenSSH runs for a registered key (see cpm-admin
// authorized-keys). Both take the same path through internal/gateway.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/rs/zerolog"
	"golang.org/x/term"

	"cpm/internal/access"
	"cpm/internal/admin"
	"cpm/internal/config"
	"cpm/internal/datadir"
	"cpm/internal/discover"
	"cpm/internal/gateway"
	"cpm/internal/gitdaemon"
	"cpm/internal/metrics"
	"cpm/internal/names"
	"cpm/internal/peer"
	"cpm/internal/replica"
	"cpm/internal/replicate"
	"cpm/internal/repos"
	"cpm/internal/sshserver"
	"cpm/internal/store"
	"cpm/internal/version"
	"cpm/internal/wake"
)

type cli struct {
	config.Flags
	Serve     serveCmd     `cmd:"" help:"Run the embedded SSH server, the git:// listener and the replication workers."`
	Replicate replicateCmd `cmd:"" help:"Run only the replication workers (for OpenSSH forced-command deployments)."`
}

// workerFlags size the replication workers. Every settings flag is a
// *string: nil when not given, so that the environment, the file or the
// default decides (internal/config), and config validates every value
// the same way wherever it came from.
type workerFlags struct {
	Workers     *string `config:"workers" placeholder:"N" help:"Replication syncs at once (default 4)."`
	PerTarget   *string `config:"per_target" name:"per-target" placeholder:"N" help:"Replication syncs at once per server (default 2)."`
	Repack      *string `config:"repack" placeholder:"DURATION" help:"How often to repack every repository (geometric); 0 to never (default 1h)."`
	VerifyEvery *string `config:"verify_every" name:"verify-every" placeholder:"DURATION" help:"How often each replica's object files are compared by content and repaired (deep check), spread over the interval; 0 to never (default 168h)."`
	Lease       *string `config:"lease" placeholder:"DURATION" help:"How long a claimed job is a worker's without renewal (default 10m)."`
	BackoffMin  *string `config:"backoff_min" name:"backoff-min" placeholder:"DURATION" help:"First retry delay after a failed sync (default 2s)."`
	BackoffMax  *string `config:"backoff_max" name:"backoff-max" placeholder:"DURATION" help:"Longest retry delay (default 5m)."`
	LogLevel    *string `config:"log_level" name:"log-level" placeholder:"LEVEL" help:"debug, info, warn or error (default info)."`
	LogFormat   *string `config:"log_format" name:"log-format" placeholder:"FORMAT" help:"json or console (default json)."`
}

// settings resolves the configuration with the flags given.
func settings(flags *config.Flags, cmdFlags any) (config.Config, datadir.Dir, error) {
	c, _, err := flags.Resolve(config.Given(cmdFlags))
	if err != nil {
		return c, "", err
	}
	dir, err := datadir.New(c.DataDir)
	return c, dir, err
}

// daemon is what a long-running command (serve, replicate) works with.
type daemon struct {
	conf config.Config
	dir  datadir.Dir
	log  zerolog.Logger
	gw   *gateway.Gateway
	st   *store.Store
}

// openDaemon resolves the settings with the command's flags, opens the
// data dir and wires the gateway; close releases what it opened.
func openDaemon(ctx context.Context, flags *config.Flags, cmdFlags any) (*daemon, error) {
	conf, dir, err := settings(flags, cmdFlags)
	if err != nil {
		return nil, err
	}
	log := newLogger(conf, os.Stderr)
	gw, st, err := newGateway(ctx, dir, log)
	if err != nil {
		return nil, err
	}
	return &daemon{conf: conf, dir: dir, log: log, gw: gw, st: st}, nil
}

func (d *daemon) close() {
	d.gw.Access.Replicas.Close()
	d.st.Close()
}

// newLogger writes to out at the configured level and format.
func newLogger(c config.Config, out io.Writer) zerolog.Logger {
	if c.LogFormat == "console" {
		// Colour codes only for a person at a terminal, never into a file
		// or journald.
		f, isFile := out.(*os.File)
		noColor := !isFile || !term.IsTerminal(int(f.Fd()))
		out = zerolog.ConsoleWriter{Out: out, TimeFormat: time.RFC3339, NoColor: noColor}
	}
	lvl, err := zerolog.ParseLevel(c.LogLevel)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger()
}

// startWorkers runs the replication workers until ctx ends; done is
// closed when they have stopped.
func startWorkers(ctx context.Context, dir datadir.Dir, gw *gateway.Gateway, c config.Config, m *metrics.Replication, log zerolog.Logger) (<-chan struct{}, error) {
	woke := make(chan struct{}, 1)
	host, _ := os.Hostname()
	syncer := replicate.NewSyncer(dir, gw.Disk)
	w := &replicate.Workers{
		Store:      gw.Access.Store,
		Syncer:     syncer,
		Publisher:  &replicate.Publisher{Store: gw.Access.Store, Syncer: syncer},
		Log:        log.With().Str("component", "replicate").Logger(),
		Global:     c.Workers,
		PerTarget:  c.PerTarget,
		Lease:      c.Lease,
		BackoffMin: c.BackoffMin,
		BackoffMax: c.BackoffMax,
		// Stable across restarts, so a restarted node takes back at once
		// the jobs it held when it stopped or crashed.
		Owner:    host + ":" + dir.String(),
		DirtyDir: dir.Dirty(),
	}
	w.VerifyEvery = c.VerifyEvery
	// No push lives longer than a session; twice that is safely dead.
	w.StaleAge = 2 * c.MaxSessionTime
	if m != nil {
		w.Observe = m.Observe
		w.Repaired = m.Repaired
	}
	// A rotation under way continues on its own, every 10 s at most, so a
	// server that was down switches keys once it is back.
	svc := admin.New(gw.Access.Store, gw.Disk, store.Actor{Name: "cpm-shell"})
	if err := svc.WriteKnownHosts(ctx, dir); err != nil {
		return nil, fmt.Errorf("pin host keys: %w", err)
	}
	var lastRotate time.Time
	w.Rotate = func(ctx context.Context) {
		if _, err := os.Stat(dir.NextReplicationKey()); err != nil || time.Since(lastRotate) < 10*time.Second {
			return
		}
		lastRotate = time.Now()
		r, err := svc.RotateKey(ctx, dir, false)
		if err != nil {
			log.Warn().Err(err).Msg("key rotation")
		} else if r.Finished {
			log.Info().Str("key", r.NewFP).Msg("key rotation finished")
		}
	}
	if err := wake.Listen(ctx, dir.WakeSocket(), woke, w.ResetBreakers); err != nil {
		return nil, err
	}
	done := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); w.Maintain(ctx, c.Repack) }()
		w.Run(ctx, woke)
		wg.Wait()
		close(done)
	}()
	return done, nil
}

type replicateCmd struct {
	workerFlags
}

func (c replicateCmd) Run(flags *config.Flags) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := openDaemon(ctx, flags, c)
	if err != nil {
		return err
	}
	defer d.close()
	done, err := startWorkers(ctx, d.dir, d.gw, d.conf, nil, d.log)
	if err != nil {
		return err
	}
	d.log.Info().Str("data_dir", d.dir.String()).Msg("cpm replication workers running")
	<-done
	return nil
}

type serveCmd struct {
	Listen        *string `config:"listen" placeholder:"ADDR" help:"SSH listen address (default 127.0.0.1:2222)."`
	GitListen     *string `config:"git_listen" name:"git-listen" placeholder:"ADDR" help:"git:// listen address for public repositories and discovery; empty to disable (default 127.0.0.1:9418)."`
	MetricsListen *string `config:"metrics_listen" name:"metrics-listen" placeholder:"ADDR" help:"Serve Prometheus metrics at http://ADDR/metrics."`
	Grace         *string `config:"grace" placeholder:"DURATION" help:"On SIGTERM, how long running pushes may take to finish (default 60s)."`

	HandshakeTimeout *string `config:"handshake_timeout" name:"handshake-timeout" placeholder:"DURATION" help:"Time from connect to the first session (default 20s)."`
	IdleTimeout      *string `config:"idle_timeout" name:"idle-timeout" placeholder:"DURATION" help:"Close a connection with no traffic this long (default 10m)."`
	MaxSessionTime   *string `config:"max_session_time" name:"max-session-time" placeholder:"DURATION" help:"Close any connection after this long (default 6h)."`
	MaxStartups      *string `config:"max_startups" name:"max-startups" placeholder:"N" help:"Unauthenticated connections at once; more are dropped (default 64)."`
	MaxSessions      *string `config:"max_sessions" name:"max-sessions" placeholder:"N" help:"Concurrent sessions per connection (default 4)."`

	workerFlags
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 && strings.HasPrefix(args[0], "key-") {
		return forced(args[0], args[1:])
	}
	var c cli
	parser, err := kong.New(&c, kong.Name("cpm-shell"), kong.Description("Serve git over ssh."))
	if err != nil {
		fmt.Fprintf(os.Stderr, "cpm: %v\n", err)
		return 2
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cpm: %s\n", oneLine(err.Error()))
		return 2
	}
	if err := kctx.Run(&c.Flags); err != nil {
		fmt.Fprintf(os.Stderr, "cpm: %s\n", oneLine(err.Error()))
		return 1
	}
	return 0
}

// newGateway opens the store and wires the gateway.
func newGateway(ctx context.Context, dir datadir.Dir, log zerolog.Logger) (*gateway.Gateway, *store.Store, error) {
	hookBin, err := repos.HookBinBeside()
	if err != nil {
		return nil, nil, err
	}
	st, err := store.Open(ctx, dir.DB())
	if err != nil {
		return nil, nil, err
	}
	node, err := st.NodeName(ctx)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	replicas := replica.New(dir.Peers())
	disk := admin.Root(dir, hookBin)
	return &gateway.Gateway{
		Access:  access.Checker{Store: st, Replicas: replicas},
		Disk:    disk,
		DataDir: dir,
		Log:     log,
		Peers:   &peer.Receiver{Store: st, Replicas: replicas, Disk: disk, TempDir: dir.Tmp(), Node: node},
		SendToPeer: func(ctx context.Context, server string, repo names.RepoPath) (replicate.Result, error) {
			svc := admin.New(st, disk, store.Actor{Name: "peer:" + server})
			return svc.SyncPush(ctx, dir, repo.String(), server, nil)
		},
	}, st, nil
}

func (c serveCmd) Run(flags *config.Flags) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := openDaemon(ctx, flags, c)
	if err != nil {
		return err
	}
	defer d.close()
	conf, dir, log, gw, st := d.conf, d.dir, d.log, d.gw, d.st
	hostKey, err := sshserver.LoadOrCreateHostKey(dir.HostKey())
	if err != nil {
		return err
	}
	m := metrics.NewGateway()
	gw.Metrics = m.Hooks()

	ln, err := net.Listen("tcp", conf.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", conf.Listen, err)
	}
	limits := sshserver.Limits{
		HandshakeTimeout:   conf.HandshakeTimeout,
		IdleTimeout:        conf.IdleTimeout,
		MaxSessionTime:     conf.MaxSessionTime,
		MaxUnauthenticated: conf.MaxStartups,
		MaxSessions:        conf.MaxSessions,
		MaxAuthTries:       sshserver.DefaultLimits.MaxAuthTries,
	}
	srv := sshserver.New(gw, hostKey, limits, log)
	errc := make(chan error, 3)
	go func() { errc <- srv.Serve(ln) }()

	var gd *gitdaemon.Server
	gitAddr, metricsAddr := "", ""
	if conf.GitListen != "" {
		gln, err := net.Listen("tcp", conf.GitListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen %s: %w", conf.GitListen, err)
		}
		gitAddr = gln.Addr().String()
		node, err := st.NodeName(ctx)
		if err != nil {
			ln.Close()
			return err
		}
		if node == "" {
			node = "cpm" // a data dir from before node names; cpm-admin init names it
		}
		sshPort := ln.Addr().(*net.TCPAddr).Port
		gd = &gitdaemon.Server{Access: gw.Access, Disk: gw.Disk, Log: log, IdleTimeout: conf.IdleTimeout,
			Identity: discover.Answer(node, version.Version, sshPort, replicationKey(dir))}
		go func() { errc <- gd.Serve(gln) }()
	}
	var hs *http.Server
	if conf.MetricsListen != "" {
		mln, err := net.Listen("tcp", conf.MetricsListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen %s: %w", conf.MetricsListen, err)
		}
		metricsAddr = mln.Addr().String()
		mux := http.NewServeMux()
		mux.Handle("/metrics", m.Handler())
		hs = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := hs.Serve(mln); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	wctx, stopWorkers := context.WithCancel(context.Background())
	defer stopWorkers()
	workersDone, err := startWorkers(wctx, dir, gw, conf, metrics.NewReplication(m.Registry, st), log)
	if err != nil {
		ln.Close()
		return err
	}
	log.Info().Str("ssh", ln.Addr().String()).Str("git", gitAddr).Str("metrics", metricsAddr).
		Str("data_dir", dir.String()).Msg("cpm-shell serving")

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	log.Info().Dur("grace", conf.Grace).Msg("shutting down; waiting for running sessions")
	sctx, cancel := context.WithTimeout(context.Background(), conf.Grace)
	defer cancel()
	if gd != nil {
		go gd.Shutdown(sctx)
	}
	if hs != nil {
		hs.Shutdown(sctx)
	}
	srv.Shutdown(sctx)
	// Running syncs stop; their leases run out and they run again after
	// the restart.
	stopWorkers()
	<-workersDone
	log.Info().Msg("stopped")
	return serveErr
}

// forced is OpenSSH forced-command mode: `cpm-shell key-ID --data-dir D`,
// with the client's command in SSH_ORIGINAL_COMMAND.
func forced(keyArg string, rest []string) int {
	var flags config.Flags
	parser, err := kong.New(&flags, kong.Name("cpm-shell key-ID"))
	if err == nil {
		_, err = parser.Parse(rest)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "cpm: %s\n", oneLine(err.Error()))
		return 2
	}
	id, err := strconv.ParseInt(strings.TrimPrefix(keyArg, "key-"), 10, 64)
	if err != nil || id <= 0 || "key-"+strconv.FormatInt(id, 10) != keyArg {
		fmt.Fprintf(os.Stderr, "cpm: invalid key id %q\n", keyArg)
		return 2
	}
	conf, dir, err := settings(&flags, nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cpm: %s\n", oneLine(err.Error()))
		return 1
	}
	// Stderr belongs to the ssh client here; the log goes to a file.
	logOut := io.Discard
	if f, err := os.OpenFile(dir.Log(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600); err == nil {
		defer f.Close()
		logOut = f
	}
	log := newLogger(conf, logOut).With().Str("mode", "forced-command").Logger()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	gw, st, err := newGateway(ctx, dir, log)
	if err != nil {
		log.Error().Err(err).Msg("open")
		fmt.Fprintln(os.Stderr, "cpm: server error; try again later")
		return 1
	}
	defer st.Close()
	defer gw.Access.Replicas.Close()
	ident, err := gw.Access.IdentifyID(ctx, id)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cpm: key is no longer registered")
		return 1
	}
	return gw.Serve(ctx, gateway.Session{
		Identity:    ident,
		Command:     os.Getenv("SSH_ORIGINAL_COMMAND"),
		GitProtocol: os.Getenv("GIT_PROTOCOL"),
		RemoteAddr:  remoteAddr(os.Getenv("SSH_CONNECTION")),
		Stdin:       os.Stdin,
		Stdout:      os.Stdout,
		Stderr:      os.Stderr,
	})
}

// replicationKey is this node's replication public key, which discovery
// announces; "" before cpm-admin init made one.
func replicationKey(dir datadir.Dir) string {
	k, err := admin.PublicKey(dir)
	if err != nil {
		return ""
	}
	return k
}

// remoteAddr turns SSH_CONNECTION ("ip port ip port") into "ip:port".
func remoteAddr(conn string) string {
	f := strings.Fields(conn)
	if len(f) < 2 {
		return ""
	}
	return net.JoinHostPort(f[0], f[1])
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
