// Command cpm-shell serves git over ssh. `cpm-shell serve` runs the
// embedded SSH server, the git:// listener and the replication workers;
// `cpm-shell replicate` runs only the workers, beside OpenSSH.
// `cpm-shell key-ID` and `cpm-shell cert` are the forced commands OpenSSH
// runs for a registered key (see cpm-admin authorized-keys) or a user
// certificate (cpm-admin authorized-principals). Sessions take the same
// path through internal/gateway either way.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"
	"github.com/rs/zerolog"
	"golang.org/x/term"

	"cpm/internal/access"
	"cpm/internal/config"
	"cpm/internal/datadir"
	"cpm/internal/gateway"
	"cpm/internal/node"
	"cpm/internal/printable"
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
	Workers      *string `config:"workers" placeholder:"N" help:"Replication syncs at once (default 4)."`
	PerTarget    *string `config:"per_target" name:"per-target" placeholder:"N" help:"Replication syncs at once per server (default 2)."`
	Repack       *string `config:"repack" placeholder:"DURATION" help:"How often to repack every repository (geometric); 0 to never (default 1h)."`
	VerifyEvery  *string `config:"verify_every" name:"verify-every" placeholder:"DURATION" help:"How often each replica's object files are compared by content and repaired (deep check), spread over the interval; 0 to never (default 168h)."`
	Lease        *string `config:"lease" placeholder:"DURATION" help:"How long a cluster node's lease and a claimed replication job hold without renewal (default 10s)."`
	Replicas     *string `config:"replicas" placeholder:"N" help:"In a cluster, how many other nodes hold a copy of each repository this node creates (default 2)."`
	SyncReplicas *string `config:"sync_replicas" name:"sync-replicas" placeholder:"N" help:"In a cluster, how many replica nodes must hold a push before git push succeeds; 0 only queues it (default 1)."`
	SyncTimeout  *string `config:"sync_timeout" name:"sync-timeout" placeholder:"DURATION" help:"How long a push waits for sync-replicas replicas before it succeeds with a warning (default 10s)."`
	BackoffMin   *string `config:"backoff_min" name:"backoff-min" placeholder:"DURATION" help:"First retry delay after a failed sync (default 2s)."`
	BackoffMax   *string `config:"backoff_max" name:"backoff-max" placeholder:"DURATION" help:"Longest retry delay (default 5m)."`
	FreeMargin   *string `config:"free_space_margin" name:"free-space-margin" placeholder:"SIZE" help:"Room a backup keeps beyond what a sync sends; with less, the sync waits (default 64MiB)."`
	LogLevel     *string `config:"log_level" name:"log-level" placeholder:"LEVEL" help:"debug, info, warn or error (default info)."`
	LogFormat    *string `config:"log_format" name:"log-format" placeholder:"FORMAT" help:"json or console (default json)."`
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

// openNode resolves the settings with the command's flags and opens the
// node; the caller closes it.
func openNode(ctx context.Context, flags *config.Flags, cmdFlags any) (*node.Node, error) {
	conf, dir, err := settings(flags, cmdFlags)
	if err != nil {
		return nil, err
	}
	return node.Open(ctx, conf, dir, newLogger(conf, os.Stderr))
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

type replicateCmd struct {
	workerFlags
}

func (c replicateCmd) Run(flags *config.Flags) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := openNode(ctx, flags, c)
	if err != nil {
		return err
	}
	defer n.Close()
	done, err := n.StartWorkers(ctx, nil)
	if err != nil {
		return err
	}
	n.Log.Info().Str("data_dir", n.Dir.String()).Msg("cpm replication workers running")
	<-done
	return nil
}

type serveCmd struct {
	Listen        *string `config:"listen" placeholder:"ADDR" help:"SSH listen address (default 127.0.0.1:2222)."`
	GitListen     *string `config:"git_listen" name:"git-listen" placeholder:"ADDR" help:"git:// listen address for public repositories and discovery; empty to disable (default 127.0.0.1:9418)."`
	MetricsListen *string `config:"metrics_listen" name:"metrics-listen" placeholder:"ADDR" help:"Serve Prometheus metrics at http://ADDR/metrics."`
	HTTPListen    *string `config:"http_listen" name:"http-listen" placeholder:"ADDR" help:"Serve git over HTTP(S) at ADDR (smart HTTP, go get); empty to disable (default)."`
	TLSCert       *string `config:"tls_cert" name:"tls-cert" placeholder:"FILE" help:"With --tls-key, serve HTTPS with this certificate chain (PEM), reloaded on SIGHUP."`
	TLSKey        *string `config:"tls_key" name:"tls-key" placeholder:"FILE" help:"The private key of --tls-cert (PEM)."`
	HTTPURL       *string `config:"http_url" name:"http-url" placeholder:"URL" help:"The HTTP listener's public base URL, such as https://git.example.com (default: from --http-listen)."`
	Grace         *string `config:"grace" placeholder:"DURATION" help:"On SIGTERM, how long running pushes may take to finish (default 60s)."`

	HandshakeTimeout *string `config:"handshake_timeout" name:"handshake-timeout" placeholder:"DURATION" help:"Time from connect to the first session (default 20s)."`
	IdleTimeout      *string `config:"idle_timeout" name:"idle-timeout" placeholder:"DURATION" help:"Close a connection with no traffic this long (default 10m)."`
	MaxSessionTime   *string `config:"max_session_time" name:"max-session-time" placeholder:"DURATION" help:"Close any connection after this long (default 6h)."`
	MaxStartups      *string `config:"max_startups" name:"max-startups" placeholder:"START:RATE:FULL" help:"Unauthenticated connections at once: from START on a new one is dropped at once with RATE% chance, rising to 100% at FULL; N alone is a hard limit (default 128:30:256)."`
	MaxPerSource     *string `config:"per_source_max_startups" name:"per-source-max-startups" placeholder:"N" help:"Unauthenticated connections at once from one IPv4 address or IPv6 /64; more are dropped at once (default 100)."`
	MaxSessions      *string `config:"max_sessions" name:"max-sessions" placeholder:"N" help:"Concurrent sessions per connection (default 4)."`
	ProxyProtocol    *string `config:"proxy_protocol" name:"proxy-protocol" placeholder:"MODE" help:"PROXY protocol on the ssh, git:// and HTTP listeners: off, optional or required (default off)."`
	ProxyAllow       *string `config:"proxy_allow" name:"proxy-allow" placeholder:"CIDR,…" help:"Load balancers allowed to send a PROXY header, and reverse proxies whose X-Forwarded-For is believed."`
	LFSMaxObjectSize *string `config:"lfs_max_object_size" name:"lfs-max-object-size" placeholder:"SIZE" help:"Largest Git LFS object a push may upload (default 5GiB)."`

	workerFlags
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 && (strings.HasPrefix(args[0], "key-") || args[0] == "cert") {
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
		fmt.Fprintf(os.Stderr, "cpm: %s\n", printable.Line(err.Error()))
		return 2
	}
	if err := kctx.Run(&c.Flags); err != nil {
		fmt.Fprintf(os.Stderr, "cpm: %s\n", printable.Line(err.Error()))
		return 1
	}
	return 0
}

func (c serveCmd) Run(flags *config.Flags) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := openNode(ctx, flags, c)
	if err != nil {
		return err
	}
	defer n.Close()
	return n.Serve(ctx)
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
		fmt.Fprintf(os.Stderr, "cpm: %s\n", printable.Line(err.Error()))
		return 2
	}
	var id int64
	if keyArg != "cert" {
		id, err = strconv.ParseInt(strings.TrimPrefix(keyArg, "key-"), 10, 64)
		if err != nil || id <= 0 || "key-"+strconv.FormatInt(id, 10) != keyArg {
			fmt.Fprintf(os.Stderr, "cpm: invalid key id %q\n", keyArg)
			return 2
		}
	}
	conf, dir, err := settings(&flags, nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "cpm: %s\n", printable.Line(err.Error()))
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
	n, err := node.Open(ctx, conf, dir, log)
	if err != nil {
		log.Error().Err(err).Msg("open")
		fmt.Fprintln(os.Stderr, "cpm: server error; try again later")
		return 1
	}
	defer n.Close()
	var ident access.Identity
	if keyArg == "cert" {
		ident, err = n.CertIdentity(ctx, os.Getenv("SSH_USER_AUTH"))
	} else {
		ident, err = n.Gateway.Access.IdentifyID(ctx, id)
	}
	if err != nil {
		log.Warn().Err(err).Msg("identify")
		fmt.Fprintln(os.Stderr, "cpm: key is no longer registered")
		return 1
	}
	return n.Gateway.Serve(ctx, gateway.Session{
		Identity:    ident,
		Command:     os.Getenv("SSH_ORIGINAL_COMMAND"),
		GitProtocol: os.Getenv("GIT_PROTOCOL"),
		RemoteAddr:  remoteAddr(os.Getenv("SSH_CONNECTION")),
		Stdin:       os.Stdin,
		Stdout:      os.Stdout,
		Stderr:      os.Stderr,
	})
}

// remoteAddr turns SSH_CONNECTION ("ip port ip port") into "ip:port".
func remoteAddr(conn string) string {
	f := strings.Fields(conn)
	if len(f) < 2 {
		return ""
	}
	return net.JoinHostPort(f[0], f[1])
}
