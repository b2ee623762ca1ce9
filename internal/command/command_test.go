package command

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"cpm/internal/names"
)

func TestParse(t *testing.T) {
	ok := func(v Verb, org, repo string) Command {
		return Command{Verb: v, Repo: names.RepoPath{Org: org, Repo: repo}}
	}
	tests := []struct {
		line string
		want Command
	}{
		{"git-upload-pack 'acme/web.git'", ok(UploadPack, "acme", "web")},
		{"git-upload-pack '/acme/web.git'", ok(UploadPack, "acme", "web")},
		{"git-upload-pack '~/acme/web'", ok(UploadPack, "acme", "web")},
		{"git-upload-pack acme/web", ok(UploadPack, "acme", "web")},
		{"git-receive-pack 'acme/web.git'", ok(ReceivePack, "acme", "web")},
		{"git-upload-archive 'acme/web.git'", ok(UploadArchive, "acme", "web")},
		{"git upload-pack 'acme/web.git'", ok(UploadPack, "acme", "web")},
		{"git receive-pack '/acme/web'", ok(ReceivePack, "acme", "web")},
		{"whoami", Command{Verb: Whoami}},
		{"info", Command{Verb: Info}},
		{"merge acme/web feature/x --into main", Command{Verb: Merge, Repo: names.RepoPath{Org: "acme", Repo: "web"},
			Source: "refs/heads/feature/x", Target: "refs/heads/main"}},
		{"merge 'acme/web.git' refs/heads/a --into refs/heads/b", Command{Verb: Merge, Repo: names.RepoPath{Org: "acme", Repo: "web"},
			Source: "refs/heads/a", Target: "refs/heads/b"}},
		{"cpm-peer hello", Command{Verb: PeerHello}},
		{"cpm-peer meta", Command{Verb: PeerMeta}},
		{"cpm-peer rekey", Command{Verb: PeerRekey}},
		{"cpm-peer relay", Command{Verb: PeerRelay}},
		{"cpm-peer prepare acme/web", ok(PeerPrepare, "acme", "web")},
		{"cpm-peer refs acme/web.git", ok(PeerRefs, "acme", "web")},
		{"cpm-peer rsync-in acme/web --server --daemon .", ok(PeerRsyncIn, "acme", "web")},
		{"cpm-peer rsync-out acme/web --server --daemon .", ok(PeerRsyncOut, "acme", "web")},
		{"cpm-peer want acme/web", ok(PeerWant, "acme", "web")},
		{"cpm-peer space acme/web", ok(PeerSpace, "acme", "web")},
		{"cpm-peer upload-pack acme/web.git", ok(PeerUploadPack, "acme", "web")},
		{"cpm-peer receive-pack 3 17 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef '/acme/web.git'", Command{Verb: PeerReceivePack, Repo: names.RepoPath{Org: "acme", Repo: "web"},
			Epoch: 3, Generation: 17, Fingerprint: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
		{"cpm-peer receive-pack --serve", Command{Verb: PeerReceivePack, Serve: true}},
		{"cpm-peer receive-pack --pack 3 17 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef '/acme/web.git'", Command{Verb: PeerReceivePack, Repo: names.RepoPath{Org: "acme", Repo: "web"},
			Epoch: 3, Generation: 17, Fingerprint: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Pack: true}},
		{"git-lfs-transfer /acme/web.git upload", Command{Verb: LFSTransfer, Repo: names.RepoPath{Org: "acme", Repo: "web"}, Operation: "upload"}},
		{"git-lfs-transfer acme/web download", Command{Verb: LFSTransfer, Repo: names.RepoPath{Org: "acme", Repo: "web"}, Operation: "download"}},
		{"git-lfs-authenticate 'acme/web.git' download", Command{Verb: LFSAuthenticate, Repo: names.RepoPath{Org: "acme", Repo: "web"}, Operation: "download"}},
	}
	for _, tt := range tests {
		got, err := Parse(tt.line)
		if err != nil || got != tt.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", tt.line, got, err, tt.want)
		}
	}
}

// hostile are command lines an attacker might send; all must be refused.
var hostile = []string{
	"",
	"git-lfs-transfer acme/web",
	"git-lfs-transfer acme/web lock",
	"git-lfs-transfer acme/web upload extra",
	"git-lfs-transfer ../etc/passwd download",
	"git-lfs-transfer acme/web --upload",
	"git-lfs-transfer -oProxyCommand=id download",
	" ",
	"sh",
	"bash -c id",
	"/bin/sh",
	"scp -t /tmp",
	"rsync --server . /",
	"git-upload-pack",
	"git-upload-pack ''",
	"git-upload-pack 'acme/web' extra",
	"git-upload-pack  'acme/web'",
	"git-upload-pack 'acme/web' ",
	"git-upload-pack\t'acme/web'",
	"git-upload-pack 'acme/web';id",
	"git-upload-pack 'acme/web'; id",
	"git-upload-pack 'acme/web' && id",
	"git-upload-pack 'acme/web' | id",
	"git-upload-pack $(id)",
	"git-upload-pack `id`",
	"git-upload-pack 'acme/web'\nid",
	"git-upload-pack 'acme/web'\rid",
	"git-upload-pack 'acme/web'\x00id",
	"git-upload-pack --upload-pack=touch acme/web",
	"git-upload-pack '--help'",
	"git-upload-pack -h",
	"git-upload-pack '../../etc/passwd'",
	"git-upload-pack 'acme/../../../etc'",
	"git-upload-pack 'acme/..'",
	"git-upload-pack '../acme/web'",
	"git-upload-pack 'acme//web'",
	"git-upload-pack 'acme/web/'",
	"git-upload-pack '/'",
	"git-upload-pack '~root/acme/web'",
	"git-upload-pack 'ext::sh -c touch% /tmp/pwned'",
	"git-upload-pack ext::sh",
	"git-upload-pack 'file:///etc'",
	"git-upload-pack 'ssh://evil/x'",
	"git-upload-pack 'acme/web'\"",
	"git-upload-pack 'ac'me/web'",
	"git-upload-pack 'acme\\/web'",
	"git-upload-pack acme/web\x1b[2J",
	"git-upload-pack '.hidden/web'",
	"git-upload-pack 'acme/.git'",
	"git-upload-pack 'acme/web.git.git'",
	"git upload-pack",
	"git config core.sshCommand id",
	"git-shell -c id",
	"git-receive-pack 'acme'",
	"git-http-backend",
	"whoami now",
	"info --all",
	"WHOAMI",
	"cpm-peer receive-pack acme/web",
	"cpm-peer receive-pack --pack --pack 1 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef acme/web",
	"cpm-peer receive-pack 1 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef acme/web --pack",
	"cpm-peer receive-pack 1 2 acme/web",
	"cpm-peer receive-pack --serve acme/web",
	"cpm-peer receive-pack --serve --pack",
	"cpm-peer receive-pack --pack --serve",
	"cpm-peer receive-pack -1 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef acme/web",
	"cpm-peer receive-pack 1 +2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef acme/web",
	"cpm-peer receive-pack 1 2 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF acme/web",
	"cpm-peer receive-pack 1 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef ../acme/web",
	"cpm-peer receive-pack 1 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef acme/web extra",
	"cpm-peer receive-pack 99999999999999999999 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef acme/web",
	"merge acme/web a --onto b",
	"merge acme/web a b",
	"merge acme/web a --into",
	"merge acme/web a --into b c",
	"merge acme/web --into a b",
	"merge acme/web -a --into b",
	"merge acme/web a --into -b",
	"merge acme/web a --into a",
	"merge acme/web a..b --into c",
	"merge acme/web a^ --into c",
	"merge acme/web HEAD~1 --into c",
	"merge acme/web a@{1} --into c",
	"merge acme/web a --into refs/tags/v1",
	"merge acme/web a --into x.lock",
	"merge acme/web a --into x/",
	"merge acme/web a --into .hidden",
	"merge acme/web a:b --into c",
	"merge acme/web a* --into c",
	"merge acme/web 'a' --into c",
	"merge ../etc a --into b",
	"cpm-peer",
	"cpm-peer hello there",
	"cpm-peer meta acme/web",
	"cpm-peer shell",
	"cpm-peer prepare",
	"cpm-peer prepare ../etc",
	"cpm-peer prepare acme/web extra",
	"cpm-peer refs -acme/web",
	"cpm-peer rsync-in acme/web",
	"cpm-peer rsync-in acme/web --server .",
	"cpm-peer rsync-in acme/web --server --daemon /",
	"cpm-peer rsync-in acme/web --server --daemon --config=/tmp/x .",
	"cpm-peer rsync-in acme/web --server --sender -vlogDtpre.iLsfxC . /etc",
	"cpm-peer rsync-in acme/web;id --server --daemon .",
	"cpm-peer rsync-out ../../etc --server --daemon .",
	"cpm-peer want",
	"cpm-peer rekey ssh-ed25519",
	"cpm-peer want acme/web now",
	"cpm-peer relay acme/web",
	"cpm-peer relay git-receive-pack acme/web",
	"cpm-peer relay --header {}",
	"git-upload-pack '" + strings.Repeat("a", 2000) + "'",
}

func TestParseRefusesHostileInput(t *testing.T) {
	for _, line := range hostile {
		got, err := Parse(line)
		if err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", line, got)
			continue
		}
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q): %v does not wrap ErrInvalid", line, err)
		}
		if msg := err.Error(); strings.ContainsAny(msg, "\n\r\x00\x1b") || len(msg) > 300 {
			t.Errorf("Parse(%q): error is not one short clean line: %q", line, msg)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range hostile {
		f.Add(s)
	}
	f.Add("git-upload-pack 'acme/web.git'")
	f.Add("git receive-pack '/acme/web'")
	f.Add("info")
	f.Fuzz(func(t *testing.T, line string) {
		c, err := Parse(line)
		if err != nil {
			if msg := err.Error(); strings.ContainsAny(msg, "\n\r\x00") {
				t.Fatalf("error with a line break: %q", msg)
			}
			return
		}
		if !utf8.ValidString(line) || strings.ContainsAny(line, "\n\r\x00;|&$`<>*?\\\"") {
			t.Fatalf("accepted %q", line)
		}
		if c.Verb.IsGit() || c.Verb == Merge || (c.Verb.IsPeer() && c.Repo != (names.RepoPath{})) {
			if names.Check(names.Org, c.Repo.Org) != nil || names.Check(names.Repo, c.Repo.Repo) != nil {
				t.Fatalf("accepted %q with invalid path %+v", line, c.Repo)
			}
		} else if c.Repo != (names.RepoPath{}) {
			t.Fatalf("non-git verb with a path: %q", line)
		}
	})
}

// TestEveryVerbHasAName: the name is the session log's "command" field.
func TestEveryVerbHasAName(t *testing.T) {
	for v := UploadPack; v <= PeerReceivePack; v++ {
		if v.String() == "" {
			t.Errorf("verb %d has no name", int(v))
		}
	}
}
