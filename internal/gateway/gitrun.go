package gateway

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"

	"cpm/internal/command"
	"cpm/internal/gitservice"
	"cpm/internal/hook"
)

var gitSubcommand = map[command.Verb]gitservice.Service{
	command.UploadPack:    gitservice.UploadPack,
	command.ReceivePack:   gitservice.ReceivePack,
	command.UploadArchive: gitservice.UploadArchive,
}

// runGit runs the git service with a clean environment and streams it.
func (g *Gateway) runGit(ctx context.Context, s Session, verb command.Verb, dir, repo string) (int, error) {
	if verb == command.UploadArchive {
		in, err := gitservice.GuardArchive(ctx, s.Stdin, dir)
		if err != nil {
			return 1, refuse("%s: %v", repo, err)
		}
		s.Stdin = in
	}
	env := g.hookEnv(s, repo)
	finish := verb == command.ReceivePack
	run := ctx
	if finish {
		run = s.lingering(ctx)
	}
	c := gitservice.Command(run, gitservice.Request{Service: gitSubcommand[verb], Dir: dir, Protocol: s.GitProtocol, Env: env,
		Stateless: s.Stateless})
	return g.runIn(ctx, run, s, c, finish)
}

// hookEnv is what git and so cpm-hook and the repository's own hooks
// learn of the session: who pushes, how, and where.
func (g *Gateway) hookEnv(s Session, repo string) []string {
	env := []string{
		"CPM_DATA_DIR=" + g.DataDir.String(),
		"CPM_REPO=" + repo,
		hook.EnvUser + "=" + s.Identity.Name(),
		hook.EnvFingerprint + "=" + s.Identity.Fingerprint,
		hook.EnvRemoteAddr + "=" + s.RemoteAddr,
	}
	if s.Identity.Via != "" {
		env = append(env, hook.EnvVia+"="+s.Identity.Via)
	}
	if s.Relayed != "" {
		env = append(env, hook.EnvRelayedBy+"="+s.Relayed)
	}
	if s.epoch != "" {
		env = append(env, s.epoch)
	}
	if s.Transport != "" {
		env = append(env, hook.EnvTransport+"="+s.Transport)
	}
	switch {
	case s.Identity.Cert != nil:
		c := s.Identity.Cert
		env = append(env, hook.EnvCert+"="+strconv.FormatUint(c.Serial, 10)+" "+c.KeyID)
	case s.Identity.Token != nil:
		env = append(env, hook.EnvTokenID+"="+strconv.FormatInt(s.Identity.Token.ID, 10))
	default:
		env = append(env, hook.EnvKeyID+"="+strconv.FormatInt(s.Identity.KeyID, 10))
	}
	return env
}

// run runs c for the session, streaming its input and output, and
// returns its exit status. A client that went away is not a failure.
func (g *Gateway) run(ctx context.Context, s Session, c *exec.Cmd) (int, error) {
	return g.runIn(ctx, ctx, s, c, false)
}

// runIn is run for c made with runCtx, which may outlive the session's
// ctx; finish keeps c running to its end when the client goes away.
func (g *Gateway) runIn(ctx, runCtx context.Context, s Session, c *exec.Cmd, finish bool) (int, error) {
	o := gitservice.Run(runCtx, c, gitservice.Streams{Stdin: s.Stdin, Stdout: s.Stdout, Stderr: s.Stderr, Finish: finish})
	if o.Err != nil && ctx.Err() == nil {
		return o.Status, fmt.Errorf("run %s: %w", c.Args[0], o.Err)
	}
	return o.Status, nil
}
