// Package gateway runs one ssh session's command for an authenticated
// key: it parses the command, decides it with the store's facts, and runs
// git on the canonical repository path. The embedded SSH server and the
// OpenSSH forced command both end here, so they behave the same.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"cpm/internal/access"
	"cpm/internal/admin"
	"cpm/internal/authz"
	"cpm/internal/command"
	"cpm/internal/datadir"
	"cpm/internal/gitservice"
	"cpm/internal/hook"
	"cpm/internal/names"
	"cpm/internal/peer"
	"cpm/internal/replicate"
	"cpm/internal/repos"
	"cpm/internal/store"
)

// Gateway serves sessions against one data directory.
type Gateway struct {
	Access  access.Checker
	Disk    repos.Root
	DataDir datadir.Dir
	Log     zerolog.Logger
	Metrics *Metrics       // may be nil
	Peers   *peer.Receiver // nil: this node takes no replicas
	// SendToPeer syncs one of this node's repositories to a neighbour now,
	// when the neighbour asks (cpm-peer want); nil: never.
	SendToPeer func(ctx context.Context, server string, repo names.RepoPath) (replicate.Result, error)
}

// Session is one command from one authenticated key.
type Session struct {
	Identity    access.Identity
	Command     string // as the client sent it
	GitProtocol string // the client's GIT_PROTOCOL, "" if none
	RemoteAddr  string
	Stdin       io.Reader
	Stdout      io.Writer
	Stderr      io.Writer
}

// outcome is what the session log records.
type outcome struct {
	verb, repo, decision string
	status               int
}

// Serve runs the session and returns its exit status.
func (g *Gateway) Serve(ctx context.Context, s Session) int {
	start := time.Now()
	in := &gitservice.CountingReader{R: s.Stdin}
	out := &gitservice.CountingWriter{W: s.Stdout}
	s.Stdin, s.Stdout = in, out
	g.Metrics.sessionStarted()
	o := g.serve(ctx, s)
	d := time.Since(start)
	bytesIn, bytesOut := in.N(), out.N()
	g.Metrics.sessionEnded(o.verb, o.decision, bytesIn, bytesOut, d)
	ev := g.Log.Info()
	if o.decision == "deny" || o.decision == "error" {
		ev = g.Log.Warn()
	}
	ev.Str("user", s.Identity.Name()).
		Str("key", s.Identity.Fingerprint).
		Str("remote", s.RemoteAddr).
		Str("command", o.verb).
		Str("repo", o.repo).
		Str("decision", o.decision).
		Int64("bytes_in", bytesIn).
		Int64("bytes_out", bytesOut).
		Int64("duration_ms", d.Milliseconds()).
		Int("status", o.status).
		Msg("session")
	return o.status
}

func (g *Gateway) serve(ctx context.Context, s Session) outcome {
	if s.Command == "" {
		fmt.Fprintf(s.Stderr, "Hi %s! You've authenticated to cpm, which does not provide shell access.\n", s.Identity.Name())
		return outcome{verb: "shell", decision: "deny", status: 1}
	}
	cmd, err := command.Parse(s.Command)
	if err != nil {
		fmt.Fprintf(s.Stderr, "cpm: %v\n", err)
		return outcome{verb: "invalid", decision: "deny", status: 1}
	}
	o := outcome{verb: cmd.Verb.String()}
	if s.Identity.Peer != "" || cmd.Verb.IsPeer() {
		return g.servePeer(ctx, s, cmd)
	}
	switch cmd.Verb {
	case command.Whoami:
		fmt.Fprintln(s.Stdout, s.Identity.Name())
		o.decision = "allow"
		return o
	case command.Info:
		if err := g.info(ctx, s); err != nil {
			fmt.Fprintf(s.Stderr, "cpm: %v\n", err)
			o.decision, o.status = "error", 1
			return o
		}
		o.decision = "allow"
		return o
	}
	o.repo = cmd.Repo.String()
	action := authz.Read
	if cmd.Verb == command.ReceivePack || cmd.Verb == command.Merge {
		action = authz.Push
	}
	res, err := g.Access.Decide(ctx, s.Identity, cmd.Repo.Org, cmd.Repo.Repo, action)
	if err != nil {
		g.Log.Error().Err(err).Str("repo", o.repo).Msg("authorize")
		fmt.Fprintln(s.Stderr, "cpm: internal error; try again later")
		o.decision, o.status = "error", 1
		return o
	}
	if !res.Facts.RepoExists && cmd.Verb == command.ReceivePack {
		// Push-to-create: org owners and admins only.
		if res, err = g.Access.Decide(ctx, s.Identity, cmd.Repo.Org, cmd.Repo.Repo, authz.Create); err == nil && res.Allow {
			if err = g.create(ctx, s, cmd); err == nil {
				res, err = g.Access.Decide(ctx, s.Identity, cmd.Repo.Org, cmd.Repo.Repo, authz.Push)
			}
		}
		if err != nil {
			g.Log.Error().Err(err).Str("repo", o.repo).Msg("create on push")
			fmt.Fprintf(s.Stderr, "cpm: could not create %s\n", cmd.Repo)
			o.decision, o.status = "error", 1
			return o
		}
	}
	if !res.Allow {
		o.decision, o.status = "deny", 1
		if res.OriginURL != "" {
			fmt.Fprintf(s.Stderr, "cpm: %s is %s\n", cmd.Repo, res.Reason)
			return o
		}
		if res.Hidden {
			// The same words whether it does not exist or may not be seen.
			fmt.Fprintf(s.Stderr, "cpm: repository %s not found\n", cmd.Repo)
			return o
		}
		fmt.Fprintf(s.Stderr, "cpm: %s: permission denied (%s)\n", cmd.Repo, res.Reason)
		return o
	}
	o.repo = res.Facts.Org + "/" + res.Facts.Repo
	dir, err := g.Disk.Open(res.Facts.Org, res.Facts.Repo)
	if err != nil {
		g.Log.Error().Err(err).Str("repo", o.repo).Msg("open repository")
		fmt.Fprintf(s.Stderr, "cpm: repository %s not found\n", cmd.Repo)
		o.decision, o.status = "error", 1
		return o
	}
	if cmd.Verb == command.Merge {
		o.decision, o.status = g.merge(ctx, s, cmd, dir, o.repo)
		return o
	}
	o.decision = "allow"
	o.status = g.runGit(ctx, s, cmd.Verb, dir, o.repo)
	return o
}

func (g *Gateway) create(ctx context.Context, s Session, cmd command.Command) error {
	svc := admin.New(g.Access.Store, g.Disk, store.Actor{Name: s.Identity.Name(), RemoteAddr: s.RemoteAddr})
	_, _, err := svc.CreateRepo(ctx, cmd.Repo.String(), false, "")
	if errors.Is(err, store.ErrExists) {
		return nil // created by a concurrent push
	}
	return err
}

var gitSubcommand = map[command.Verb]gitservice.Service{
	command.UploadPack:    gitservice.UploadPack,
	command.ReceivePack:   gitservice.ReceivePack,
	command.UploadArchive: gitservice.UploadArchive,
}

// runGit runs the git service with a clean environment and streams it.
func (g *Gateway) runGit(ctx context.Context, s Session, verb command.Verb, dir, repo string) int {
	c := gitservice.Command(ctx, gitservice.Request{
		Service:  gitSubcommand[verb],
		Dir:      dir,
		Protocol: s.GitProtocol,
		Env: []string{
			"CPM_DATA_DIR=" + g.DataDir.String(),
			"CPM_REPO=" + repo,
			hook.EnvUser + "=" + s.Identity.Name(),
			hook.EnvKeyID + "=" + strconv.FormatInt(s.Identity.KeyID, 10),
			hook.EnvFingerprint + "=" + s.Identity.Fingerprint,
			hook.EnvRemoteAddr + "=" + s.RemoteAddr,
		},
	})
	return g.run(ctx, s, c, repo)
}

// run runs c for the session, streaming its input and output, and
// returns its exit status.
func (g *Gateway) run(ctx context.Context, s Session, c *exec.Cmd, repo string) int {
	o := gitservice.Run(ctx, c, gitservice.Streams{Stdin: s.Stdin, Stdout: s.Stdout, Stderr: s.Stderr})
	if o.Err != nil && ctx.Err() == nil {
		g.Log.Error().Err(o.Err).Str("repo", repo).Str("command", c.Args[0]).Msg("run")
		fmt.Fprintln(s.Stderr, "cpm: internal error; try again later")
	}
	return o.Status
}

// info lists the repositories the key may read, with its permission.
func (g *Gateway) info(ctx context.Context, s Session) error {
	all, err := g.Access.Readable(ctx, s.Identity)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.Stdout, "hello %s, this is cpm; you may read:\n\n", s.Identity.Name())
	for _, l := range all {
		if l.Origin != "" {
			fmt.Fprintf(s.Stdout, " %-5s  %s/%s  (replica of %s)\n", l.Perm, l.Org, l.Repo, l.Origin)
			continue
		}
		fmt.Fprintf(s.Stdout, " %-5s  %s/%s\n", l.Perm, l.Org, l.Repo)
	}
	if len(all) == 0 {
		fmt.Fprintln(s.Stdout, " (no repositories)")
	}
	return nil
}
