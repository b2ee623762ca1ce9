package testworld

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// killTree kills pid and every process descended from it with SIGKILL,
// as the death of a machine would: cpm runs git in process groups of its
// own, which a signal to the server's group would miss. Each process is
// stopped before its children are looked for, so that none can start
// another one unseen; then all are killed. Linux only (/proc).
func killTree(pid int) {
	stopped := map[int]bool{}
	frontier := []int{pid}
	for len(frontier) > 0 {
		for _, p := range frontier {
			syscall.Kill(p, syscall.SIGSTOP)
			stopped[p] = true
		}
		frontier = nil
		for child, parent := range parents() {
			if stopped[parent] && !stopped[child] {
				frontier = append(frontier, child)
			}
		}
	}
	for p := range stopped {
		syscall.Kill(p, syscall.SIGKILL)
	}
}

// parents maps every process's id to its parent's, from /proc.
func parents() map[int]int {
	out := map[int]int{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid …: comm may hold spaces and parentheses.
		s := string(b)
		end := strings.LastIndexByte(s, ')')
		if end < 0 {
			continue
		}
		f := strings.Fields(s[end+1:])
		pid, err1 := strconv.Atoi(strings.Fields(s)[0])
		if len(f) < 2 || err1 != nil {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			out[pid] = ppid
		}
	}
	return out
}
