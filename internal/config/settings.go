package config

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"cpm/internal/dburl"
)

// Config is every setting of cpm, resolved: flag over environment
// (CPM_KEY) over file over default.
type Config struct {
	DataDir          string
	Database         string // "" for SQLite in the data directory, or a postgres:// URL
	Listen           string
	GitListen        string
	MetricsListen    string
	Grace            time.Duration
	HandshakeTimeout time.Duration
	IdleTimeout      time.Duration
	MaxSessionTime   time.Duration
	MaxStartups      Startups
	MaxPerSource     int
	MaxSessions      int
	Workers          int
	PerTarget        int
	Repack           time.Duration
	VerifyEvery      time.Duration
	// Lease is how long a holder keeps what it renews: a cluster node
	// its heartbeat (down without one this long), a worker its claimed
	// replication job.
	Lease time.Duration
	// Replicas is how many other nodes of a cluster hold a copy of each
	// repository.
	Replicas int
	// SyncReplicas is how many replica nodes must hold a push before the
	// client's git push succeeds (0: the push is only queued for them);
	// SyncTimeout is how long a push waits for them before it succeeds
	// anyway, with a warning that it is not yet replicated.
	SyncReplicas     int
	SyncTimeout      time.Duration
	BackoffMin       time.Duration
	BackoffMax       time.Duration
	LogLevel         string
	LogFormat        string
	LagThreshold     time.Duration
	LFSMaxObjectSize int64          // bytes
	FreeSpaceMargin  int64          // bytes
	ProxyProtocol    string         // off, optional or required
	ProxyAllow       []netip.Prefix // who may send a PROXY header or X-Forwarded-For
	HTTP             HTTP
}

// Source says where a value came from.
type Source string

const (
	FromDefault Source = "default"
	FromFile    Source = "file"
	FromEnv     Source = "env"
	FromFlag    Source = "flag"
	// FromDataDir: the database recorded by cpm-admin init --database in
	// DATA/database, which every command of the data directory uses.
	FromDataDir Source = "data dir"
)

// Setting describes one key: its name in the file, the environment and
// on the command line, its default, and how it is parsed into Config.
type Setting struct {
	Key     string // in the YAML file; the flag is --KEY with dashes, the variable CPM_KEY
	Default string
	Help    string
	set     func(c *Config, v string) error
}

// Env is the setting's environment variable.
func (s Setting) Env() string { return "CPM_" + strings.ToUpper(s.Key) }

// Flag is the setting's command-line flag, without dashes.
func (s Setting) Flag() string { return strings.ReplaceAll(s.Key, "_", "-") }

// Settings lists every setting, in the order `config show` prints them.
var Settings = []Setting{
	{"data_dir", "./cpm-data", "data directory", func(c *Config, v string) error { return nonEmpty(&c.DataDir, v) }},
	{"database", "", "the metadata database: empty for SQLite at DATA/cpm.db, or a postgres:// URL (PostgreSQL 13 or newer); the password is never shown", func(c *Config, v string) error { return database(&c.Database, v) }},
	{"listen", "127.0.0.1:2222", "ssh listen address", func(c *Config, v string) error { return addr(&c.Listen, v, false) }},
	{"git_listen", "127.0.0.1:9418", "git:// listen address (public repositories, discovery); empty to disable", func(c *Config, v string) error { return addr(&c.GitListen, v, true) }},
	{"http_listen", "", "git over HTTP(S) listen address (smart HTTP, go get); empty to disable", func(c *Config, v string) error { return addr(&c.HTTP.Listen, v, true) }},
	{"tls_cert", "", "the HTTP listener's certificate chain (PEM file); with tls_key it serves HTTPS, reloaded on SIGHUP", func(c *Config, v string) error { c.HTTP.TLSCert = v; return nil }},
	{"tls_key", "", "the private key of tls_cert (PEM file)", func(c *Config, v string) error { c.HTTP.TLSKey = v; return nil }},
	{"http_forwarded_header", "x-forwarded-for", "the one header whose rightmost hop from a proxy in proxy_allow names an HTTP client: x-forwarded-for (HAProxy option forwardfor, nginx) or forwarded (RFC 7239); the other is ignored", func(c *Config, v string) error {
		return oneOf(&c.HTTP.ForwardedHeader, v, "x-forwarded-for", "forwarded")
	}},
	{"http_url", "", "the public base URL of the HTTP listener, such as https://git.example.com (default: from http_listen, https with tls_cert)", func(c *Config, v string) error { return baseURL(&c.HTTP.URL, v) }},
	{"metrics_listen", "", "Prometheus metrics address; empty to disable", func(c *Config, v string) error { return addr(&c.MetricsListen, v, true) }},
	{"grace", "60s", "on SIGTERM, how long running pushes may take to finish", func(c *Config, v string) error { return duration(&c.Grace, v, 0) }},
	{"handshake_timeout", "20s", "time from connect to the first session", func(c *Config, v string) error { return duration(&c.HandshakeTimeout, v, time.Second) }},
	{"idle_timeout", "10m", "close a connection with no traffic this long", func(c *Config, v string) error { return duration(&c.IdleTimeout, v, time.Second) }},
	{"max_session_time", "6h", "close any connection after this long", func(c *Config, v string) error { return duration(&c.MaxSessionTime, v, time.Second) }},
	{"max_startups", "128:30:256", "unauthenticated connections at once, as START:RATE:FULL (from START on a new one is dropped at once with RATE% chance, rising to 100% at FULL) or N", func(c *Config, v string) error { return startups(&c.MaxStartups, v) }},
	{"per_source_max_startups", "100", "unauthenticated connections at once from one IPv4 address or IPv6 /64; more are dropped at once", func(c *Config, v string) error { return positive(&c.MaxPerSource, v) }},
	{"max_sessions", "4", "concurrent sessions per connection", func(c *Config, v string) error { return positive(&c.MaxSessions, v) }},
	{"workers", "4", "replication syncs at once (the global cap on transfers)", func(c *Config, v string) error { return positive(&c.Workers, v) }},
	{"per_target", "2", "replication syncs at once per server", func(c *Config, v string) error { return positive(&c.PerTarget, v) }},
	{"repack", "1h", "how often every repository is repacked; 0 for never", func(c *Config, v string) error { return duration(&c.Repack, v, 0) }},
	{"verify_every", "168h", "how often each replica's object files are compared by content with the source's and repaired (deep check), spread over the interval; 0 for never", func(c *Config, v string) error { return duration(&c.VerifyEvery, v, 0) }},
	{"lease", "10s", "how long a cluster node's lease and a worker's claim on a replication job hold without renewal (a lease is renewed every fifth of it, a claim every third): a node whose lease ran out is down, takes no session, and its repositories fail over to a replica; a job whose worker died runs again", func(c *Config, v string) error { return duration(&c.Lease, v, 3*time.Second) }},
	{"replicas", "2", "in a cluster, how many other nodes hold a copy of each repository (capped at the other nodes)", func(c *Config, v string) error { return count(&c.Replicas, v) }},
	{"sync_replicas", "1", "in a cluster, how many replica nodes must hold a push before git push succeeds; 0 only queues it for them (a push acknowledged in the last seconds of replication lag can then be lost with the primary's disk)", func(c *Config, v string) error { return count(&c.SyncReplicas, v) }},
	{"sync_timeout", "10s", "how long a push waits for sync_replicas replicas; after it the push succeeds with a warning that it is not yet replicated", func(c *Config, v string) error { return duration(&c.SyncTimeout, v, 100*time.Millisecond) }},
	{"backoff_min", "2s", "first retry delay after a failed sync", func(c *Config, v string) error { return duration(&c.BackoffMin, v, 100*time.Millisecond) }},
	{"backoff_max", "5m", "longest retry delay", func(c *Config, v string) error { return duration(&c.BackoffMax, v, time.Second) }},
	{"log_level", "info", "debug, info, warn or error", func(c *Config, v string) error { return oneOf(&c.LogLevel, v, "debug", "info", "warn", "error") }},
	{"log_format", "json", "json, or console for people", func(c *Config, v string) error { return oneOf(&c.LogFormat, v, "json", "console") }},
	{"lag_threshold", "15m", "doctor reports replication lag above this", func(c *Config, v string) error { return duration(&c.LagThreshold, v, time.Second) }},
	{"proxy_protocol", "off", "PROXY protocol (v1, v2) on the ssh, git:// and HTTP listeners: off, optional or required (then only from proxy_allow)", func(c *Config, v string) error { return oneOf(&c.ProxyProtocol, v, "off", "optional", "required") }},
	{"proxy_allow", "", "comma-separated CIDRs of the load balancers allowed to send a PROXY header, and of the reverse proxies whose http_forwarded_header the HTTP listener believes (not on a connection with a PROXY header)", func(c *Config, v string) error { return prefixes(&c.ProxyAllow, v) }},
	{"free_space_margin", "64MiB", "room a backup keeps beyond what a sync sends; with less free space the sync waits (disk full)", func(c *Config, v string) error { return byteSize(&c.FreeSpaceMargin, v) }},
	{"lfs_max_object_size", "5GiB", "largest Git LFS object a push may upload (bytes, or with a unit: 500MiB, 5GiB)", func(c *Config, v string) error { return byteSize(&c.LFSMaxObjectSize, v) }},
}

// Value is one resolved setting, for `config show`.
type Value struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Source Source `json:"source"`
	Env    string `json:"env"`
	Flag   string `json:"flag"`
}

// Resolve computes the configuration: for each setting the flag (flags
// holds only those given on the command line, by key), else the
// environment, else the file, else the default. A bad value is an error
// that names the key and where the value came from.
func Resolve(file map[string]string, getenv func(string) string, flags map[string]string) (Config, []Value, error) {
	var c Config
	var vals []Value
	for _, s := range Settings {
		v, src := s.Default, FromDefault
		if fv, ok := file[s.Key]; ok {
			v, src = fv, FromFile
		}
		if ev, ok := lookup(getenv, s.Env()); ok {
			v, src = ev, FromEnv
		}
		if fv, ok := flags[s.Key]; ok {
			v, src = fv, FromFlag
		}
		if err := s.set(&c, v); err != nil {
			where := map[Source]string{FromDefault: "default", FromFile: "in the file", FromEnv: "from " + s.Env(), FromFlag: "from --" + s.Flag()}[src]
			if s.Key == "database" {
				return Config{}, nil, fmt.Errorf("config: %s (%s): %v", s.Key, where, err)
			}
			return Config{}, nil, fmt.Errorf("config: %s %q (%s): %v", s.Key, v, where, err)
		}
		vals = append(vals, Value{Key: s.Key, Value: s.shown(v), Source: src, Env: s.Env(), Flag: "--" + s.Flag()})
	}
	if c.ProxyProtocol != "off" && len(c.ProxyAllow) == 0 {
		return Config{}, nil, fmt.Errorf("config: proxy_protocol %s needs proxy_allow: the load balancers' addresses", c.ProxyProtocol)
	}
	if err := c.HTTP.check(); err != nil {
		return Config{}, nil, err
	}
	if c.BackoffMax < c.BackoffMin {
		return Config{}, nil, fmt.Errorf("config: backoff_max %s is below backoff_min %s", c.BackoffMax, c.BackoffMin)
	}
	return c, vals, nil
}

func lookup(getenv func(string) string, name string) (string, bool) {
	if getenv == nil {
		return "", false
	}
	v := getenv(name)
	return v, v != ""
}

// checkKeys refuses keys that no setting has.
func checkKeys(file map[string]string) error {
	known := map[string]bool{}
	for _, s := range Settings {
		known[s.Key] = true
	}
	var unknown []string
	for k := range file {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("unknown setting %s (cpm-admin config show lists them)", strings.Join(unknown, ", "))
	}
	return nil
}

// shown is the value as config show prints it: a database URL without
// its password.
func (s Setting) shown(v string) string {
	if s.Key == "database" {
		return dburl.Redact(v)
	}
	return v
}

// database takes a postgres:// URL, or empty for SQLite. A bad value is
// never echoed: it may hold a password.
func database(dst *string, v string) error {
	if v != "" {
		if _, err := dburl.Parse(v); err != nil {
			return err
		}
	}
	*dst = v
	return nil
}

func nonEmpty(dst *string, v string) error {
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("must not be empty")
	}
	*dst = v
	return nil
}

func addr(dst *string, v string, emptyOK bool) error {
	if v == "" && emptyOK {
		*dst = ""
		return nil
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("want HOST:PORT")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("bad port %q", port)
	}
	if host != "" && net.ParseIP(host) == nil && !hostRe(host) {
		return fmt.Errorf("bad host %q", host)
	}
	*dst = v
	return nil
}

func hostRe(h string) bool {
	for _, r := range h {
		if !(r == '.' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return h != ""
}

func duration(dst *time.Duration, v string, min time.Duration) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("want a duration such as 30s, 10m or 2h")
	}
	if d < 0 || (d != 0 && d < min) || (d == 0 && min > 0) {
		return fmt.Errorf("want at least %s", max(min, time.Nanosecond))
	}
	*dst = d
	return nil
}

func positive(dst *int, v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 100000 {
		return fmt.Errorf("want a whole number from 1")
	}
	*dst = n
	return nil
}

func count(dst *int, v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 || n > 1000 {
		return fmt.Errorf("want a whole number from 0")
	}
	*dst = n
	return nil
}

// Startups is max_startups: like OpenSSH's MaxStartups, connections are
// taken below Start, dropped with Rate percent chance from Start, rising
// to every one at Full.
type Startups struct{ Start, Rate, Full int }

// startups parses START:RATE:FULL, or N for N:100:N (a hard limit).
func startups(dst *Startups, v string) error {
	f := strings.Split(v, ":")
	if len(f) == 1 {
		f = []string{v, "100", v}
	}
	var n [3]int
	for i := range n {
		if len(f) != 3 || positive(&n[i], f[i]) != nil && !(i == 1 && f[i] == "0") {
			return fmt.Errorf("want START:RATE:FULL such as 128:30:256, or a whole number from 1")
		}
	}
	p := Startups{Start: n[0], Rate: n[1], Full: n[2]}
	if p.Rate > 100 || p.Full < p.Start {
		return fmt.Errorf("want RATE at most 100 and FULL at least START")
	}
	*dst = p
	return nil
}

func oneOf(dst *string, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			*dst = v
			return nil
		}
	}
	return fmt.Errorf("want one of %s", strings.Join(allowed, ", "))
}

// byteSize parses a size such as 5GiB, 500MB or 1048576 (bytes).
func byteSize(dst *int64, v string) error {
	n, err := humanize.ParseBytes(v)
	if err != nil || n == 0 || n > 1<<50 {
		return fmt.Errorf("want a size such as 500MiB or 5GiB")
	}
	*dst = int64(n)
	return nil
}

// prefixes parses a comma-separated list of CIDRs ("" for none); a bare
// address is one host.
func prefixes(dst *[]netip.Prefix, v string) error {
	*dst = nil
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return fmt.Errorf("%q: want CIDRs such as 10.0.0.0/8,192.0.2.7", f)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		*dst = append(*dst, p.Masked())
	}
	return nil
}
