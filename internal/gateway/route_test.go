package gateway

import (
	"testing"

	"cpm/internal/command"
	"cpm/internal/names"
	"cpm/internal/store"
)

func TestRelays(t *testing.T) {
	repo := names.RepoPath{Org: "acme", Repo: "web"}
	cmd := func(v command.Verb, op string) command.Command {
		return command.Command{Verb: v, Repo: repo, Operation: op}
	}
	var (
		push     = cmd(command.ReceivePack, "")
		fetch    = cmd(command.UploadPack, "")
		archive  = cmd(command.UploadArchive, "")
		merge    = cmd(command.Merge, "")
		lfsUp    = cmd(command.LFSTransfer, "upload")
		lfsDown  = cmd(command.LFSTransfer, "download")
		whoami   = command.Command{Verb: command.Whoami}
		info     = command.Command{Verb: command.Info}
		onN1     = store.Server{ID: 1, Name: "n1"}
		current  = store.Placement{Primary: onN1, Generation: 5, Local: 5}
		lagging  = store.Placement{Primary: onN1, Generation: 5, Local: 4}
		noCopy   = store.Placement{Primary: onN1, Generation: 5, Local: -1}
		unplaced = store.Placement{Generation: 5, Local: 5}
	)
	tests := []struct {
		name    string
		cmd     command.Command
		p       store.Placement
		self    string
		relayed bool
		want    bool
	}{
		{"not in a cluster: push here", push, unplaced, "", false, false},
		{"not in a cluster, even with a primary row", push, current, "", false, false},
		{"repository without a primary", push, unplaced, "n2", false, false},
		{"push on the primary", push, current, "n1", false, false},
		{"push on the primary, other spelling", push, current, "N1", false, false},
		{"push on a current replica", push, current, "n2", false, true},
		{"push on a lagging replica", push, lagging, "n2", false, true},
		{"push on a node without a copy", push, noCopy, "n3", false, true},
		{"relayed push is never relayed again", push, current, "n2", true, false},
		{"merge on a replica", merge, current, "n2", false, true},
		{"merge on the primary", merge, current, "n1", false, false},
		{"fetch on a current replica", fetch, current, "n2", false, false},
		{"fetch on a lagging replica", fetch, lagging, "n2", false, true},
		{"fetch on a node without a copy", fetch, noCopy, "n3", false, true},
		{"fetch on the primary", fetch, lagging, "n1", false, false},
		{"relayed fetch, lagging: here all the same", fetch, lagging, "n2", true, false},
		{"archive on a current replica", archive, current, "n2", false, false},
		{"archive on a lagging replica", archive, lagging, "n2", false, true},
		{"LFS download, current", lfsDown, current, "n2", false, false},
		{"LFS download, lagging", lfsDown, lagging, "n2", false, true},
		{"LFS upload (and locks), current", lfsUp, current, "n2", false, true},
		{"LFS upload on the primary", lfsUp, current, "n1", false, false},
		{"whoami", whoami, lagging, "n2", false, false},
		{"info", info, lagging, "n2", false, false},
	}
	for _, tt := range tests {
		if got := relays(tt.cmd, tt.p, tt.self, tt.relayed); got != tt.want {
			t.Errorf("%s: relays = %v, want %v", tt.name, got, tt.want)
		}
	}
}
