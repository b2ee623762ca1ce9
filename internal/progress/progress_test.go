package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		line string
		want Report
		ok   bool
	}{
		{"         32,768   0%    0.00kB/s    0:00:00  ", Report{Bytes: 32768}, true},
		{"     21,594,112  71%   19.56MB/s    0:00:02  ", Report{Bytes: 21594112, Percent: 71, Rate: 19.56 * (1 << 20), Time: 2 * time.Second}, true},
		{"     30,001,000 100%   20.86MB/s    0:00:01 (xfr#2, to-chk=0/3)", Report{Bytes: 30001000, Percent: 100, Rate: 20.86 * (1 << 20), Time: time.Second, Files: 2}, true},
		{"  1,000  45%  512.00kB/s  1:02:03 (xfr#7, ir-chk=1000/2345)", Report{Bytes: 1000, Percent: 45, Rate: 512 << 10, Time: time.Hour + 2*time.Minute + 3*time.Second, Files: 7}, true},
		{"  1,000  45%  3.00GB/s  0:00:01", Report{Bytes: 1000, Percent: 45, Rate: 3 << 30, Time: time.Second}, true},
		{"", Report{}, false},
		{"Number of files: 3 (reg: 2, dir: 1)", Report{}, false},
		{"Total bytes sent: 30,008,654", Report{}, false},
		{">f+++++++++ objects/pack/pack-1.pack", Report{}, false},
		{"  1,000  145%  3.00GB/s  0:00:01", Report{}, false},
		{"  1,000  45%  3.00XB/s  0:00:01", Report{}, false},
		{"rsync: [sender] write error: Broken pipe (32)", Report{}, false},
		{"  99999999999999999999  45%  3.00MB/s  0:00:01", Report{}, false},
	}
	for _, tc := range tests {
		got, ok := Parse(tc.line)
		if ok != tc.ok || got != tc.want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

// TestBar feeds two rsync runs, statistics and all, to a bar: it ends at
// 100% of both runs' bytes, and nothing of rsync's own output shows.
func TestBar(t *testing.T) {
	var out bytes.Buffer
	b := New(&out, "sync acme/web")
	run := b.Run()
	for _, chunk := range []string{
		"\r         32,768   0%    0.00kB/s    0:00:00  \r     21,5",
		"94,112  71%   19.56MB/s    0:00:02  \r     30,000,000 100%   20.86MB/s    0:00:01 (xfr#1, to-chk=0/1)\n\n",
		"Number of files: 3 (reg: 2, dir: 1)\nTotal bytes sent: 30,008,654\n",
	} {
		run.Write([]byte(chunk))
	}
	run = b.Run()
	run.Write([]byte("\r          1,000 100%    1.00kB/s    0:00:00 (xfr#1, to-chk=0/1)\n"))
	if got := b.base + b.cur; got != 30001000 {
		t.Errorf("bytes over both runs: %d", got)
	}
	b.End(true)
	s := out.String()
	if !strings.Contains(s, "100%") || !strings.Contains(s, "sync acme/web") || !strings.HasSuffix(s, "\n") {
		t.Errorf("bar: %q", s)
	}
	for _, never := range []string{"Number of files", "Total bytes", "xfr#"} {
		if strings.Contains(s, never) {
			t.Errorf("rsync's %q shown: %q", never, s)
		}
	}
	out.Reset()
	failed := New(&out, "sync acme/web")
	failed.Run().Write([]byte("\r     21,594,112  71%   19.56MB/s    0:00:02  \r"))
	failed.End(false)
	if s := out.String(); strings.Contains(s, "100%") || !strings.HasSuffix(s, "\n") {
		t.Errorf("a failed sync's bar: %q", s)
	}
	var nilBar *Bar
	nilBar.Run().Write([]byte("x"))
	nilBar.End(false)
}
