package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"cpm/internal/clientaddr"
	"cpm/internal/discover"
	"cpm/internal/gitdaemon"
	"cpm/internal/httpserver"
	"cpm/internal/metrics"
	"cpm/internal/replkey"
	"cpm/internal/sshserver"
	"cpm/internal/version"
)

// servers are the listeners of a serving node; nil fields are not
// listening.
type servers struct {
	ssh     *sshserver.Server
	git     *gitdaemon.Server
	metrics *http.Server
	http    *httpserver.Server
	errc    chan error
}

// Serve runs the embedded SSH server, the git:// listener (unless
// git_listen is empty), metrics (if metrics_listen is set) and the
// replication workers until ctx ends, then gives running sessions the
// grace period to finish.
func (n *Node) Serve(ctx context.Context) error {
	m := metrics.NewGateway()
	n.Gateway.Metrics = m.Hooks()
	// Workers and the lease outlive ctx: they stop after the sessions
	// they serve.
	wctx, stopWorkers := context.WithCancel(context.Background())
	defer stopWorkers()
	leasesDone := n.startLeases(wctx, m.Registry)
	cacheDone := n.startAuthCache(wctx, m.Registry)
	defer func() { stopWorkers(); <-leasesDone; <-cacheDone }()
	srv := servers{errc: make(chan error, 4)}
	addrs, err := n.listen(ctx, &srv, m)
	if err != nil {
		srv.close()
		return err
	}
	n.Pushes = metrics.NewPushes(m.Registry)
	workersDone, err := n.StartWorkers(wctx, metrics.NewReplication(m.Registry, n.Store))
	if err != nil {
		srv.close()
		return err
	}
	// Until the servers have stopped, grace included: a SIGHUP then
	// (a reload racing a stop) must not end the process, its default.
	go n.reloadOnHangup(wctx, srv.http)
	n.Log.Info().Str("ssh", addrs[0]).Str("git", addrs[1]).Str("metrics", addrs[2]).Str("http", addrs[3]).
		Str("data_dir", n.Dir.String()).Str("database", n.Store.Path()).Msg("cpm-shell serving") // Path has no password

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-srv.errc:
	}
	n.Log.Info().Dur("grace", n.Conf.Grace).Msg("shutting down; waiting for running sessions")
	sctx, cancel := context.WithTimeout(context.Background(), n.Conf.Grace)
	defer cancel()
	srv.shutdown(sctx)
	// Running syncs stop; their leases run out and they run again after
	// the restart.
	stopWorkers()
	<-workersDone
	n.Log.Info().Msg("stopped")
	return serveErr
}

// listen opens every configured listener and serves it; it returns the
// ssh, git://, metrics and HTTP addresses ("" for one not configured).
func (n *Node) listen(ctx context.Context, srv *servers, m *metrics.Gateway) ([4]string, error) {
	var addrs [4]string
	c := n.Conf
	hostKey, err := sshserver.LoadOrCreateHostKey(n.Dir.HostKey())
	if err != nil {
		return addrs, err
	}
	var httpLn net.Listener
	if c.HTTP.Listen != "" {
		if httpLn, err = n.bindHTTP(); err != nil {
			return addrs, err
		}
	}
	raw, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return addrs, fmt.Errorf("listen %s: %w", c.Listen, err)
	}
	addrs[0] = raw.Addr().String()
	ln := clientaddr.Listen(raw, clientaddr.Mode(c.ProxyProtocol), c.ProxyAllow)
	srv.ssh = sshserver.New(n.Gateway, hostKey, sshserver.Limits{
		HandshakeTimeout: c.HandshakeTimeout,
		IdleTimeout:      c.IdleTimeout,
		MaxSessionTime:   c.MaxSessionTime,
		Startups: sshserver.Startups{Start: c.MaxStartups.Start, Rate: c.MaxStartups.Rate, Full: c.MaxStartups.Full,
			PerSource: c.MaxPerSource},
		MaxSessions:  c.MaxSessions,
		MaxAuthTries: sshserver.DefaultLimits.MaxAuthTries,
	}, n.Log)
	srv.ssh.Certs = n.certChecker()
	srv.ssh.Dropped = m.Dropped
	go func() { srv.errc <- srv.ssh.Serve(ln) }()
	if c.GitListen != "" {
		if addrs[1], err = n.listenGit(ctx, srv, raw.Addr().(*net.TCPAddr).Port); err != nil {
			return addrs, err
		}
	}
	if httpLn != nil {
		if addrs[3], err = n.listenHTTP(ctx, srv, m, httpLn); err != nil {
			return addrs, err
		}
	}
	if c.MetricsListen != "" {
		mln, err := net.Listen("tcp", c.MetricsListen)
		if err != nil {
			return addrs, fmt.Errorf("listen %s: %w", c.MetricsListen, err)
		}
		addrs[2] = mln.Addr().String()
		mux := http.NewServeMux()
		mux.Handle("/metrics", m.Handler())
		srv.metrics = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() {
			if err := srv.metrics.Serve(mln); !errors.Is(err, http.ErrServerClosed) {
				srv.errc <- err
			}
		}()
	}
	return addrs, nil
}

// listenGit serves git:// for public repositories and answers discovery
// probes with this node's name, ssh port and replication key.
func (n *Node) listenGit(ctx context.Context, srv *servers, sshPort int) (string, error) {
	gln, err := net.Listen("tcp", n.Conf.GitListen)
	if err != nil {
		return "", fmt.Errorf("listen %s: %w", n.Conf.GitListen, err)
	}
	name, err := n.Store.NodeName(ctx)
	if err != nil {
		gln.Close()
		return "", fmt.Errorf("read node name: %w", err)
	}
	if name == "" {
		name = "cpm" // a data dir from before node names; cpm-admin init names it
	}
	key, _ := replkey.PublicKey(n.Dir) // "" before cpm-admin init made one
	srv.git = &gitdaemon.Server{Access: n.Gateway.Access, Disk: n.Disk, Log: n.Log, IdleTimeout: n.Conf.IdleTimeout,
		Identity: discover.Answer(name, version.Version, sshPort, key), Elsewhere: n.Gateway.FetchElsewhere}
	if n.Gateway.Fence != nil {
		srv.git.Fence = n.Gateway.Fence
	}
	go func() {
		srv.errc <- srv.git.Serve(clientaddr.Listen(gln, clientaddr.Mode(n.Conf.ProxyProtocol), n.Conf.ProxyAllow))
	}()
	return gln.Addr().String(), nil
}

// shutdown stops every listener, giving running sessions until ctx ends.
func (s *servers) shutdown(ctx context.Context) {
	if s.git != nil {
		go s.git.Shutdown(ctx)
	}
	if s.metrics != nil {
		s.metrics.Shutdown(ctx)
	}
	httpDone := make(chan struct{})
	go func() {
		defer close(httpDone)
		if s.http != nil {
			s.http.Shutdown(ctx)
		}
	}()
	if s.ssh != nil {
		s.ssh.Shutdown(ctx)
	}
	<-httpDone
}

// close stops what listen started after a failure to start the rest.
func (s *servers) close() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.shutdown(ctx)
}
