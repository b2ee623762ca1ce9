package relay

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
)

const fp = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []Header{
		{Command: "git-receive-pack 'acme/web.git'", Key: fp, Remote: "127.0.0.1:5000", Protocol: "version=2"},
		{Command: "git-upload-pack acme/web", Key: fp},
		{Command: "git-lfs-transfer acme/web upload", Key: fp, User: "alice", Cert: &Cert{KeyID: "alice@laptop", Serial: 7, CA: "corp"}},
		{Command: "merge acme/web topic --into main", Key: fp},
		{Command: "git-receive-pack acme/web", Key: fp, Hops: 2}, // relayed on once after a handover
		{Command: "git-upload-pack 'acme/web'", Anonymous: true, Protocol: "version=2"},
		{Command: "git-upload-pack 'acme/web.git'", Anonymous: true, Stateless: "advertise", Transport: "http"},
		{Command: "git-receive-pack 'acme/web.git'", Token: "cpm_abc", Stateless: "rpc", Transport: "http"},
		{Command: "git-lfs-transfer 'acme/web.git' upload", Token: "cpm_abc", Transport: "http", Mode: ModeLFSHTTP, URL: "https://git.example.com"},
		{Command: "git-lfs-transfer 'acme/web.git' download", Anonymous: true, Transport: "http", Mode: ModeLFSHTTP, URL: "http://127.0.0.1:8080/"},
	} {
		var b bytes.Buffer
		if err := Write(&b, h); err != nil {
			t.Fatal(err)
		}
		b.WriteString("PACK stream")
		r := bufio.NewReaderSize(&b, MaxHeader)
		got, cmd, err := Read(r)
		if err != nil {
			t.Fatalf("%+v: %v", h, err)
		}
		if got.Command != h.Command || got.Key != h.Key || got.Token != h.Token || got.Stateless != h.Stateless || got.Transport != h.Transport || got.User != h.User || (h.Cert != nil && *got.Cert != *h.Cert) || got.Mode != h.Mode || got.URL != h.URL || cmd.Verb == 0 {
			t.Errorf("read %+v %+v; wrote %+v", got, cmd, h)
		}
		// The session's stream follows, unread.
		if rest, _ := io.ReadAll(r); string(rest) != "PACK stream" {
			t.Errorf("stream after the header: %q", rest)
		}
	}
}

// Every header a hostile or broken node could send is refused.
func TestHeaderRefusesHostileInput(t *testing.T) {
	ok := `"command":"git-upload-pack acme/web","key":"` + fp + `"`
	tests := map[string]string{
		"too long":               `{` + ok + `,"remote":"` + strings.Repeat("a", MaxHeader) + `"}` + "\n",
		"too long, no newline":   strings.Repeat(" ", MaxHeader+10),
		"no newline":             `{` + ok + `}`,
		"empty":                  "",
		"empty line":             "\n",
		"bad JSON":               `{` + ok + ",}\n",
		"not an object":          `["git-upload-pack acme/web"]` + "\n",
		"unknown field":          `{` + ok + `,"admin":true}` + "\n",
		"two values":             `{` + ok + `}{` + ok + "}\n",
		"whoami":                 `{"command":"whoami","key":"` + fp + `"}` + "\n",
		"a third hop":            `{` + ok + `,"hops":3}` + "\n",
		"negative hops":          `{` + ok + `,"hops":-1}` + "\n",
		"info":                   `{"command":"info","key":"` + fp + `"}` + "\n",
		"a peer verb":            `{"command":"cpm-peer relay","key":"` + fp + `"}` + "\n",
		"meta":                   `{"command":"cpm-peer meta","key":"` + fp + `"}` + "\n",
		"a shell":                `{"command":"sh -c id","key":"` + fp + `"}` + "\n",
		"path escape":            `{"command":"git-upload-pack ../../etc","key":"` + fp + `"}` + "\n",
		"lfs-authenticate":       `{"command":"git-lfs-authenticate acme/web download","key":"` + fp + `"}` + "\n",
		"no key":                 `{"command":"git-upload-pack acme/web"}` + "\n",
		"anonymous push":         `{"command":"git-receive-pack acme/web","anonymous":true}` + "\n",
		"anonymous LFS":          `{"command":"git-lfs-transfer acme/web download","anonymous":true}` + "\n",
		"anonymous with a key":   `{` + ok + `,"anonymous":true}` + "\n",
		"anonymous user":         `{"command":"git-upload-pack acme/web","anonymous":true,"user":"alice","cert":{"key_id":"k","serial":1,"ca":"c"}}` + "\n",
		"not a fingerprint":      `{"command":"git-upload-pack acme/web","key":"MD5:aa"}` + "\n",
		"user without cert":      `{` + ok + `,"user":"alice"}` + "\n",
		"cert without user":      `{` + ok + `,"cert":{"key_id":"k","serial":1,"ca":"c"}}` + "\n",
		"control in remote":      `{` + ok + `,"remote":"a\u001b[2Jb"}` + "\n",
		"newline in protocol":    `{` + ok + `,"protocol":"version=2\nEVIL=1"}` + "\n",
		"unknown stateless mode": `{` + ok + `,"stateless":"cgi"}` + "\n",
		"stateless archive":      `{"command":"git-upload-archive acme/web","key":"` + fp + `","stateless":"rpc"}` + "\n",
		"stateless LFS":          `{"command":"git-lfs-transfer acme/web upload","key":"` + fp + `","stateless":"rpc"}` + "\n",
		"unknown transport":      `{` + ok + `,"transport":"ftp"}` + "\n",
		"token and key":          `{` + ok + `,"token":"cpm_x"}` + "\n",
		"token with a newline":   `{"command":"git-upload-pack acme/web","token":"cpm_x\nEVIL=1"}` + "\n",
		"anonymous with a token": `{"command":"git-upload-pack acme/web","anonymous":true,"token":"cpm_x"}` + "\n",
		"unknown relay mode":     `{` + ok + `,"mode":"cgi"}` + "\n",
		"lfs-http of git":        `{"command":"git-upload-pack acme/web","token":"cpm_x","transport":"http","mode":"lfs-http","url":"http://h"}` + "\n",
		"lfs-http over ssh":      `{"command":"git-lfs-transfer acme/web upload","key":"` + fp + `","mode":"lfs-http","url":"http://h"}` + "\n",
		"lfs-http without url":   `{"command":"git-lfs-transfer acme/web upload","token":"cpm_x","transport":"http","mode":"lfs-http"}` + "\n",
		"lfs-http url ftp":       `{"command":"git-lfs-transfer acme/web upload","token":"cpm_x","transport":"http","mode":"lfs-http","url":"ftp://h"}` + "\n",
		"lfs-http url user":      `{"command":"git-lfs-transfer acme/web upload","token":"cpm_x","transport":"http","mode":"lfs-http","url":"http://a:b@h"}` + "\n",
		"lfs-http url newline":   `{"command":"git-lfs-transfer acme/web upload","token":"cpm_x","transport":"http","mode":"lfs-http","url":"http://h/\nX: y"}` + "\n",
		"url without mode":       `{` + ok + `,"url":"http://h"}` + "\n",
		"anonymous lfs upload":   `{"command":"git-lfs-transfer acme/web upload","anonymous":true,"transport":"http","mode":"lfs-http","url":"http://h"}` + "\n",
		"unknown cert field":     `{` + ok + `,"user":"alice","cert":{"key_id":"k","serial":1,"ca":"c","principals":["root"]}}` + "\n",
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if h, _, err := Read(bufio.NewReaderSize(strings.NewReader(in), MaxHeader)); err == nil {
				t.Errorf("accepted %+v", h)
			}
		})
	}
}

func TestWriteRefusesTooLong(t *testing.T) {
	h := Header{Command: "git-upload-pack acme/web", Key: fp, Remote: strings.Repeat("a", MaxHeader)}
	if err := Write(io.Discard, h); err == nil {
		t.Error("wrote a header longer than the reader takes")
	}
}
