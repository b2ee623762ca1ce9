package test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// readmeSection is the text under the "## " heading that starts with
// title, up to the next such heading.
func readmeSection(t *testing.T, readme, title string) string {
	t.Helper()
	i := strings.Index(readme, "\n## "+title)
	if i < 0 {
		t.Fatalf("README has no section %q", title)
	}
	rest := readme[i+1:]
	if j := strings.Index(rest[3:], "\n## "); j >= 0 {
		rest = rest[:j+3]
	}
	return rest
}

var shellBlock = regexp.MustCompile("(?s)```sh\n(.*?)```")

// TestReadmeRecipes runs every shell block of README's "Serving git" and
// "Operator guide" sections verbatim, as root, in a throwaway root: new
// PID, mount and network namespaces, overlays over /etc, /var/lib, /srv,
// /usr/local, /home and /root (so the users and files the recipe makes
// vanish with it), git.example.com and backup.example.com on loopback
// addresses, real sshd on port 22 where a machine has OpenSSH. systemctl
// and apt-get are stand-ins (testdata/readme): the first starts a unit
// file's ExecStart as its User, the second checks packages are installed.
// Then a user does what the recipe promises: push, clone, replication,
// key rotation.
func TestReadmeRecipes(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the recipes run as root, in namespaces of their own: run make test as root")
	}
	for _, cmd := range []string{"unshare", "runuser", "useradd", "ip", "/usr/sbin/sshd"} {
		needCommand(t, cmd)
	}
	body, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(body)
	const userEnv = `export GIT_SSH_COMMAND="ssh -i $PWD/alice -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$PWD/kh"
export GIT_AUTHOR_NAME=a GIT_AUTHOR_EMAIL=a@example.com GIT_COMMITTER_NAME=a GIT_COMMITTER_EMAIL=a@example.com
pin() { for _ in $(seq 1 100); do ssh-keyscan -p "$2" -t ed25519 "$1" >kh 2>/dev/null && [ -s kh ] && return 0; sleep 0.2; done; return 1; }
git init -q -b main w
git -C w commit -q --allow-empty -m first
`
	// The LFS recipe is a user's: it runs in the forced command's check,
	// against the server that recipe set up.
	lfsBlocks := shellBlock.FindAllStringSubmatch(readmeSection(t, readme, "Big repositories"), -1)
	if len(lfsBlocks) != 1 {
		t.Fatalf("%d shell blocks under Big repositories, want 1", len(lfsBlocks))
	}
	// So is the certificate recipe, with the operator's cpm-admin.
	certBlocks := shellBlock.FindAllStringSubmatch(readmeSection(t, readme, "SSH certificates"), -1)
	if len(certBlocks) != 1 {
		t.Fatalf("%d shell blocks under SSH certificates, want 1", len(certBlocks))
	}
	// The HTTP(S) recipe runs on the operator guide's main server.
	httpBlocks := shellBlock.FindAllStringSubmatch(readmeSection(t, readme, "HTTP(S)"), -1)
	if len(httpBlocks) != 1 {
		t.Fatalf("%d shell blocks under HTTP(S), want 1", len(httpBlocks))
	}
	for _, tc := range []struct {
		name, section string
		blocks        int
		sshdAt        string
		check         string
	}{
		{
			name: "OpenSSH forced command", section: "Serving git", blocks: 1, sshdAt: "127.0.0.2",
			check: userEnv + `pin git.example.com 22
git -C w push -q git@git.example.com:acme/web.git main
git clone -q git@git.example.com:acme/web.git c
[ "$(git -C c rev-parse HEAD)" = "$(git -C w rev-parse HEAD)" ]
[ "$(ssh -i alice -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=kh git@git.example.com whoami)" = alice ]
` + lfsBlocks[0][1] + `
git clone -q git@git.example.com:acme/web.git c2
cmp c2/design.psd web/design.psd
mkdir -p ~/.ssh && cp kh ~/.ssh/known_hosts
cpm-admin() { runuser -u git -- /usr/local/bin/cpm-admin --config /etc/cpm/cpm.yaml "$@"; }
` + certBlocks[0][1] + `
! ssh -i bob -o IdentitiesOnly=yes -o BatchMode=yes git@git.example.com whoami
`,
		},
		{
			name: "operator guide", section: "Operator guide", blocks: 3, sshdAt: "127.0.0.3",
			check: userEnv + `cpm-admin() { runuser -u git -- /usr/local/bin/cpm-admin --config /etc/cpm/cpm.yaml "$@"; }
replicated() {
	for _ in $(seq 1 150); do
		[ "$(runuser -u cpm -- git -C /srv/cpm-replicas/acme/web.git rev-parse -q --verify main 2>/dev/null)" = "$1" ] && return 0
		sleep 0.2
	done
	echo "not on the backup: $1" >&2
	return 1
}
pin git.example.com 2222
git -C w push -q ssh://git@git.example.com:2222/acme/web.git main
replicated "$(git -C w rev-parse HEAD)"
cpm-admin server rotate-key | tee rotate.out
grep -q "rotation finished" rotate.out
git -C w commit -q --allow-empty -m second
git -C w push -q ssh://git@git.example.com:2222/acme/web.git main
replicated "$(git -C w rev-parse HEAD)"
cpm-admin doctor
` + httpBlocks[0][1] + `
[ "$(git -C web-https rev-parse HEAD)" = "$(git -C w rev-parse HEAD)" ]
git -C web-https commit -q --allow-empty -m "over https"
GIT_SSL_CAINFO=/etc/cpm/tls.crt git -C web-https push -q origin main
cpm-admin audit --json --limit 1 | grep -q '"transport": "http"'
`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blocks := shellBlock.FindAllStringSubmatch(readmeSection(t, readme, tc.section), -1)
			if len(blocks) != tc.blocks {
				t.Fatalf("%d shell blocks in %q, want %d: the test runs them all", len(blocks), tc.section, tc.blocks)
			}
			var recipe strings.Builder
			for i, b := range blocks {
				recipe.WriteString("# block " + string(rune('1'+i)) + "\n" + b[1] + "\n")
			}
			scratch := t.TempDir()
			work := filepath.Join(scratch, "work")
			// The recipe's users (git, cpm) run in it: let them in.
			for _, d := range []string{filepath.Dir(scratch), scratch} {
				os.Chmod(d, 0o755)
			}
			if err := os.MkdirAll(work, 0o755); err != nil {
				t.Fatal(err)
			}
			for _, b := range []string{bin.Admin, bin.Shell, bin.Hook} {
				if out, err := exec.Command("cp", b, work).CombinedOutput(); err != nil {
					t.Fatalf("cp: %v %s", err, out)
				}
			}
			if out, err := exec.Command("cp", "-r", "../deploy", work).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v %s", err, out)
			}
			if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alice", "-f", filepath.Join(work, "alice")).CombinedOutput(); err != nil {
				t.Fatalf("ssh-keygen: %v %s", err, out)
			}
			recipeFile, checkFile := filepath.Join(scratch, "recipe.sh"), filepath.Join(scratch, "check.sh")
			os.WriteFile(recipeFile, []byte(recipe.String()), 0o644)
			os.WriteFile(checkFile, []byte(tc.check), 0o644)
			harness, _ := filepath.Abs("testdata/readme/harness.sh")

			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "unshare", "--pid", "--mount", "--net", "--fork", "--kill-child", "--mount-proc",
				harness, scratch, work, recipeFile, checkFile)
			cmd.Env = append(testworld.Env(), "SSHD_AT="+tc.sshdAt)
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "### passed") {
				t.Fatalf("README %q, run verbatim: %v\n%s", tc.section, err, out)
			}
			if testing.Verbose() {
				t.Logf("%s", out)
			}
		})
	}
}
