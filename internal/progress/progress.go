// Package progress shows how a sync advances on an operator's terminal:
// it reads what rsync reports with --info=progress2 and draws one bar,
// with percent, rate and time left, over every rsync run of the sync
// (objects, refs, LFS objects...). rsync's own lines are never shown.
package progress

import (
	"bytes"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Report is one line of rsync's --info=progress2 output.
type Report struct {
	Bytes   int64         // processed so far in this run
	Percent int           // of the run's total
	Rate    float64       // bytes per second
	Time    time.Duration // left while running; taken, once the line names a transfer
	Files   int           // files transferred so far (its xfr#), when named
}

// reportRe matches "  1,234,567  45%   12.34MB/s    0:00:03 (xfr#12, to-chk=3/20)".
var reportRe = regexp.MustCompile(`^\s*([\d,]+)\s+(\d{1,3})%\s+([\d.]+)([kMGT]?B)/s\s+(\d+):(\d\d):(\d\d)(?:\s+\(xfr#(\d+),[^)]*\))?\s*$`)

// rsync's rate units are powers of 1024.
var rateUnit = map[string]float64{"B": 1, "kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}

// Parse reads one progress line; ok is false for anything else (rsync's
// statistics, itemized changes, warnings).
func Parse(line string) (r Report, ok bool) {
	m := reportRe.FindStringSubmatch(line)
	if m == nil {
		return Report{}, false
	}
	var err error
	if r.Bytes, err = strconv.ParseInt(strings.ReplaceAll(m[1], ",", ""), 10, 64); err != nil {
		return Report{}, false
	}
	r.Percent, _ = strconv.Atoi(m[2])
	rate, err := strconv.ParseFloat(m[3], 64)
	if err != nil || r.Percent > 100 {
		return Report{}, false
	}
	r.Rate = rate * rateUnit[m[4]]
	h, _ := strconv.Atoi(m[5])
	mi, _ := strconv.Atoi(m[6])
	s, _ := strconv.Atoi(m[7])
	r.Time = time.Duration(h)*time.Hour + time.Duration(mi)*time.Minute + time.Duration(s)*time.Second
	if m[8] != "" {
		r.Files, _ = strconv.Atoi(m[8])
	}
	return r, true
}

// Bar is the one bar of a sync. Its methods may be called on a nil Bar:
// off a terminal there is none.
type Bar struct {
	mu   sync.Mutex
	bar  *progressbar.ProgressBar
	base int64 // bytes of the runs before this one
	cur  int64 // bytes of this run
	line []byte
}

// New draws a bar on w, the operator's terminal, labelled with what.
// The total is unknown until rsync's first report, but the bar starts
// with one of 1 byte all the same: with an unknown length the library
// redraws a spinner from a goroutine of its own, which writes to w behind
// the Bar's lock and, after a failed sync, never stops.
func New(w io.Writer, what string) *Bar {
	return &Bar{bar: progressbar.NewOptions64(1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(20),
		progressbar.OptionSetTheme(progressbar.Theme{Saucer: "#", SaucerPadding: " ", BarStart: "[", BarEnd: "]"}),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetRenderBlankState(true),
		progressbar.OptionOnCompletion(func() { io.WriteString(w, "\n") }),
	)}
}

// Run returns the writer for the standard output of one rsync run; the
// runs of a sync follow each other, and each counts from zero.
func (b *Bar) Run() io.Writer {
	if b == nil {
		return io.Discard
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.base, b.cur, b.line = b.base+b.cur, 0, b.line[:0]
	return runWriter{b}
}

type runWriter struct{ b *Bar }

// Write splits rsync's output at the carriage returns between progress
// updates and the newlines of everything else.
func (w runWriter) Write(p []byte) (int, error) {
	b := w.b
	b.mu.Lock()
	defer b.mu.Unlock()
	b.line = append(b.line, p...)
	for {
		i := bytes.IndexAny(b.line, "\r\n")
		if i < 0 {
			break
		}
		if r, ok := Parse(string(b.line[:i])); ok {
			b.update(r)
		}
		b.line = b.line[i+1:]
	}
	if len(b.line) > 4096 {
		b.line = b.line[:0] // not a progress line; never hold more
	}
	return len(p), nil
}

// update moves the bar: the sync's total is what the runs so far
// processed, plus what this run's percent says it will.
func (b *Bar) update(r Report) {
	b.cur = r.Bytes
	done := b.base + b.cur
	total := done
	if r.Percent > 0 {
		total = b.base + r.Bytes*100/int64(r.Percent)
	}
	if total != b.bar.GetMax64() {
		b.bar.ChangeMax64(max(total, 1))
	}
	b.bar.Set64(done)
}

// End ends the bar's line: at 100% when the sync succeeded (ok), where
// it stopped when it did not.
func (b *Bar) End(ok bool) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !ok {
		b.bar.Exit()
		return
	}
	if done := b.base + b.cur; done > 0 {
		b.bar.ChangeMax64(done)
		b.bar.Set64(done)
	}
	b.bar.Finish()
}
