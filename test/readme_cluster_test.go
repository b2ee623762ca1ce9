package test

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"cpm/internal/testworld"
)

// TestReadmeClusterRecipe runs the shell blocks of README's "Several
// machines, one service" verbatim: the first on three nodes of one
// machine (127.0.0.2, .3, .4, each with its variables), the second on
// node 1. Then a user pushes through one node and clones through
// another, all three present one host key, and node list shows three
// nodes up; the shell block of "When a node dies" then runs on node 1.
// (The balancer's shipped configuration is what
// TestClusterIsOneService runs.)
func TestReadmeClusterRecipe(t *testing.T) {
	body, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := shellBlock.FindAllStringSubmatch(readmeSection(t, string(body), "Several machines, one service"), -1)
	if len(blocks) != 2 {
		t.Fatalf("%d shell blocks under Several machines, one service, want 2", len(blocks))
	}
	database := pg.Database(t)
	root := t.TempDir()
	var addrs []string
	var envs [][]string
	for i := 1; i <= 3; i++ {
		host := "127.0.0." + string(rune('1'+i))
		addr := net.JoinHostPort(host, strconv.Itoa(testworld.FreePort(t, host)))
		name := "node-" + string(rune('0'+i))
		env := append(testworld.Env(), "PATH="+bin.Dir+":"+os.Getenv("PATH"),
			"CPM_DATABASE="+database, "CPM_DATA_DIR="+filepath.Join(root, name),
			"NODE="+name, "ADDR="+addr, "BALANCER="+testworld.BalancerSource)
		runRecipe(t, root, name, blocks[0][1], env)
		waitFor(t, 30*time.Second, name+" to listen", func() bool {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
		addrs, envs = append(addrs, addr), append(envs, env)
	}
	w := &testworld.World{T: t, Bin: bin, Root: root, DataDir: filepath.Join(root, "node-1"), Database: database}
	alice := w.NewKey("alice")
	if err := os.WriteFile(filepath.Join(root, "alice.pub"), []byte(alice.Public+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := runRecipe(t, root, "admin", blocks[1][1], envs[0])
	if !strings.Contains(out, "node-3") || !strings.Contains(out, "acme/web") {
		t.Errorf("node list and repo where in the recipe:\n%s", out)
	}

	checkRecipeCluster(t, w, alice, addrs, envs[1])
	checkRecipeByHand(t, root, body, envs[0])
}

// checkRecipeByHand runs the shell block of README's "When a node dies"
// verbatim on node 1 of the recipe's cluster: acme/web moves to node 2,
// node 3 drains.
func checkRecipeByHand(t *testing.T, root string, readme []byte, env []string) {
	t.Helper()
	blocks := shellBlock.FindAllStringSubmatch(readmeSection(t, string(readme), "When a node dies"), -1)
	if len(blocks) != 1 {
		t.Fatalf("%d shell blocks under When a node dies, want 1", len(blocks))
	}
	out := runRecipe(t, root, "by-hand", blocks[0][1], env)
	if !strings.Contains(out, "moved acme/web to node-2") {
		t.Errorf("repo move in the recipe:\n%s", out)
	}
	cmd := exec.Command(bin.Admin, "node", "list", "--json")
	cmd.Env = env
	list, err := cmd.Output()
	var rows []listedNode
	if err == nil {
		err = json.Unmarshal(list, &rows)
	}
	states := map[string]string{}
	for _, r := range rows {
		states[r.Name] = r.State
	}
	if err != nil || states["node-3"] != "draining" || states["node-2"] != "up" {
		t.Errorf("node list after the recipe: %v %v\n%s", err, states, list)
	}
}

// checkRecipeCluster: the recipe's nodes at addrs present one host key; a
// push through node 2 is in a clone through node 3 right after; node 2's
// environment env sees three nodes up.
func checkRecipeCluster(t *testing.T, w *testworld.World, alice testworld.Key, addrs []string, env []string) {
	t.Helper()
	root := w.Root
	pub, err := testworld.PublicHostKey(filepath.Join(root, "node-1"))
	if err != nil {
		t.Fatal(err)
	}
	var pins []string
	for _, a := range addrs {
		if k := hostKeyAt(t, a); k != pub {
			t.Errorf("%s presents %q, node 1 %q", a, k, pub)
		}
		host, port, _ := net.SplitHostPort(a)
		pins = append(pins, "["+host+"]:"+port)
	}
	kh := filepath.Join(root, "known_hosts")
	os.WriteFile(kh, []byte(strings.Join(pins, ",")+" "+pub+"\n"), 0o600)
	via := func(i int) *testworld.Client {
		return w.ClientAt(addrs[i], kh, alice)
	}
	dir := t.TempDir()
	via(1).MustGit("", "init", "-q", "-b", "main", dir)
	head := via(1).Commit(dir, "through node 2")
	via(1).MustGit(dir, "push", "-q", via(1).URL("acme/web"), "HEAD:main")
	if got := headOf(t, via(2), "acme/web"); got != head {
		t.Errorf("clone through node 3 right after a push through node 2: %q, want %s", got, head)
	}
	cmd := exec.Command(bin.Admin, "node", "list", "--json")
	cmd.Env = env
	list, err := cmd.Output()
	var rows []listedNode
	if err == nil {
		err = json.Unmarshal(list, &rows)
	}
	up := 0
	for _, r := range rows {
		if r.State == "up" {
			up++
		}
	}
	if err != nil || up != 3 {
		t.Errorf("node list on node 2: %v, %d up\n%s", err, up, list)
	}
}

// runRecipe runs script with bash -eu in dir, in a process group of its
// own that the test ends at cleanup (the recipe starts cpm-shell serve in
// the background), and returns what it printed.
func runRecipe(t *testing.T, dir, name, script string, env []string) string {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir, cmd.Env = dir, env
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			if syscall.Kill(-cmd.Process.Pid, 0) != nil {
				break
			}
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s:\n%s", name, b)
		}
	})
	err = cmd.Wait()
	b, _ := os.ReadFile(logPath)
	if err != nil {
		t.Fatalf("README recipe on %s: %v\n%s", name, err, b)
	}
	return string(b)
}
