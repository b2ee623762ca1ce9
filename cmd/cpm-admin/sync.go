package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"cpm/internal/admin"
	"cpm/internal/transfer"
	"cpm/internal/wake"
)

type syncCmd struct {
	Push   syncPushCmd   `cmd:"" help:"Copy a repository to a server now."`
	Pull   syncPullCmd   `cmd:"" help:"Copy a repository from a server's replica into this one."`
	Verify syncVerifyCmd `cmd:"" help:"Compare a repository's refs and object files with its replica (--deep: by content; --repair: fix what differs)."`
	Status syncStatusCmd `cmd:"" help:"Replication state per repository and server."`
	Retry  syncRetryCmd  `cmd:"" help:"Clear backoff and blocks: retry everything now."`
}

type syncPushCmd struct {
	Repo  string `arg:"" name:"ORG/REPO" help:"Repository."`
	To    string `required:"" help:"Server name."`
	Force bool   `help:"Send it even if it is outside the server's --repos scope."`
}

func (c syncPushCmd) Run(e *env, svc *admin.Service) error {
	conf, _, err := e.flags.Resolve(nil)
	if err != nil {
		return err
	}
	svc.FreeMargin = conf.FreeSpaceMargin
	res, err := svc.SyncPush(e.ctx, e.dir, c.Repo, c.To, c.Force, e.terminal())
	var scope *transfer.ScopeError
	if errors.As(err, &scope) {
		return fmt.Errorf("%w; --force sends it anyway", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "synced %s to %s: %s; refs verified (%s)\n", c.Repo, c.To, res.Summary(), res.Fingerprint[:12])
	return nil
}

type syncPullCmd struct {
	Repo  string `arg:"" name:"ORG/REPO" help:"Repository: one of this node's (restored from the server's replica; one this node lost is created and registered again from a backup, in its organisation, which must exist), or, from a neighbour, one of the neighbour's."`
	From  string `required:"" help:"Server name."`
	Force bool   `help:"Replace local refs even where they hold commits the source does not."`
}

func (c syncPullCmd) Run(e *env, svc *admin.Service) error {
	res, err := svc.SyncPull(e.ctx, e.dir, c.Repo, c.From, c.Force, e.terminal())
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "pulled %s from %s: %s (refs %s)\n", c.Repo, c.From, res.Summary(), res.Fingerprint[:12])
	return nil
}

type syncVerifyCmd struct {
	Repo   string `arg:"" name:"ORG/REPO" help:"Repository."`
	To     string `required:"" help:"Server name."`
	Deep   bool   `help:"Compare every object file by content, not by name and size (reads them all on both sides)."`
	Repair bool   `help:"Send again what is missing or damaged, then check again."`
}

func (c syncVerifyCmd) Run(e *env, svc *admin.Service) error {
	v, err := svc.SyncVerify(e.ctx, e.dir, c.Repo, c.To, c.Deep, c.Repair)
	if err != nil {
		return err
	}
	if v.Deep != nil {
		fmt.Fprintf(e.stdout, "deep check: %d MiB of object files compared by content in %s\n", v.Deep.Examined>>20, v.Deep.Duration.Round(time.Millisecond))
	}
	if v.Repaired != nil {
		if !v.Repaired.OK() {
			return fmt.Errorf("%s on %s: repair left %s", v.Repo, v.Server, v.Repaired)
		}
		fmt.Fprintf(e.stdout, "repaired %s on %s\n", v.Repo, v.Server)
		if v.RefsMatch {
			fmt.Fprintf(e.stdout, "%s on %s matches (%s); no object files missing or damaged\n", v.Repo, v.Server, v.Local[:12])
			return nil
		}
	}
	switch {
	case v.RemoteError != "" && v.Deep != nil && !v.Deep.OK():
		return fmt.Errorf("%s on %s: the replica's refs cannot be read (%s); object files are %s there", v.Repo, v.Server, v.RemoteError, v.Deep)
	case v.RemoteError != "":
		return fmt.Errorf("%s on %s: the replica's refs cannot be read (%s); %d object files missing there", v.Repo, v.Server, v.RemoteError, v.MissingObjects)
	case !v.RefsMatch:
		return fmt.Errorf("%s on %s differs: local refs %s, replica %s; %d object files missing there", v.Repo, v.Server, v.Local[:12], v.Remote[:12], v.MissingObjects)
	case v.Deep != nil && !v.Deep.OK():
		return fmt.Errorf("%s on %s: refs match, but object files are %s there; sync verify --deep --repair sends them again", v.Repo, v.Server, v.Deep)
	case v.MissingObjects > 0:
		// Refs equal but files missing: newer objects not yet referenced,
		// or files lost on the replica. The next sync brings them.
		return fmt.Errorf("%s on %s: refs match, but %d object files are missing there", v.Repo, v.Server, v.MissingObjects)
	}
	what := "no object files missing"
	if v.Deep != nil {
		what = "no object files missing or damaged"
	}
	fmt.Fprintf(e.stdout, "%s on %s matches (%s); %s\n", v.Repo, v.Server, v.Local[:12], what)
	return nil
}

type syncStatusCmd struct {
	JSON bool `name:"json" help:"Print a JSON array of every row."`
	All  bool `name:"all" help:"Print every row, however many (beyond 100 rows the table is summed up: counts per server and state, the oldest pending row, the first failures)."`
}

// Beyond summaryRows rows the table is summed up, with at most
// summaryFailures failures listed.
const (
	summaryRows     = 100
	summaryFailures = 20
)

func (c syncStatusCmd) Run(e *env, svc *admin.Service) error {
	rows, err := svc.SyncStatus(e.ctx)
	if err != nil {
		return err
	}
	if c.JSON {
		return printJSON(e.stdout, rows)
	}
	if !c.All && len(rows) > summaryRows {
		return printStatusSummary(e.stdout, admin.Summarize(rows, summaryFailures))
	}
	return printStatusRows(e.stdout, rows)
}

func printStatusRows(w io.Writer, rows []admin.StatusRow) error {
	out := make([][]string, 0, len(rows))
	for _, s := range rows {
		deep := orDash(s.DeepCheckedAt)
		if s.DeepCheckedAt != "" {
			deep += " " + orWord(s.DeepResult, "ok")
		}
		out = append(out, []string{s.Repo, s.Server, s.State, fmt.Sprintf("%.0fs", s.LagSeconds), strconv.Itoa(s.Attempts), orDash(s.LastSuccessAt), deep, s.LastError})
	}
	return printTable(w, []string{"REPOSITORY", "SERVER", "STATE", "LAG", "ATTEMPTS", "LAST SUCCESS", "DEEP CHECK", "LAST ERROR"}, out)
}

func printStatusSummary(w io.Writer, sum admin.StatusSummary) error {
	fmt.Fprintf(w, "%d rows on %d servers, summed up; --all to list every row\n\n", sum.Rows, len(sum.Servers))
	states := []string{"done", "pending", "running", "failed", "blocked", "promoted"}
	counts := make([][]string, 0, len(sum.Servers))
	for _, srv := range sum.Servers {
		row := []string{srv.Server}
		for _, st := range states {
			row = append(row, strconv.Itoa(srv.States[st]))
		}
		counts = append(counts, row)
	}
	if err := printTable(w, []string{"SERVER", "DONE", "PENDING", "RUNNING", "FAILED", "BLOCKED", "PROMOTED"}, counts); err != nil {
		return err
	}
	if o := sum.Oldest; o != nil {
		fmt.Fprintf(w, "\noldest not synced: %s on %s, %s, lag %.0fs\n", o.Repo, o.Server, o.State, o.LagSeconds)
	}
	if len(sum.Failures) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	if err := printStatusRows(w, sum.Failures); err != nil {
		return err
	}
	if sum.MoreFailures > 0 {
		fmt.Fprintf(w, "%d more failures; --all to list every row\n", sum.MoreFailures)
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

type syncRetryCmd struct{}

func (syncRetryCmd) Run(e *env, svc *admin.Service) error {
	n, err := svc.Store.Retry(e.ctx, svc.Actor)
	if err != nil {
		return err
	}
	wake.Retry(e.dir.WakeSocket())
	fmt.Fprintf(e.stdout, "%d jobs due now\n", n)
	return nil
}
