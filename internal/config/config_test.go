package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "c.yaml")
		os.WriteFile(p, []byte(body), 0o600)
		return p
	}
	tests := []struct {
		body    string
		want    string
		wantErr string
	}{
		{"data_dir: /srv/cpm\n", "/srv/cpm", ""},
		{"", "", ""},
		{"# nothing\n", "", ""},
		{"data_dri: /srv/cpm\n", "", "unknown setting data_dri"},
		{"data_dir: [1, 2]\n", "", "want a single value"},
		{"data_dir: /a\n---\ndata_dir: /b\n", "/a", ""},
		{":\n\t- x", "", "config"},
		{"- a\n- b\n", "", "config"},
	}
	for _, tt := range tests {
		f, err := Load(write(tt.body))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
				t.Errorf("Load(%q) = %v, want one-line error containing %q", tt.body, err, tt.wantErr)
			}
			continue
		}
		if err != nil || f["data_dir"] != tt.want {
			t.Errorf("Load(%q) = %+v, %v", tt.body, f, err)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("missing file accepted")
	}
	if f, err := Load(""); err != nil || len(f) != 0 {
		t.Errorf("no file: %+v %v", f, err)
	}
}

func TestPrecedence(t *testing.T) {
	file := map[string]string{"listen": "127.0.0.1:1", "workers": "3", "idle_timeout": "1m"}
	env := map[string]string{"CPM_LISTEN": "127.0.0.1:2", "CPM_WORKERS": "5"}
	flags := map[string]string{"listen": "127.0.0.1:3"}
	c, vals, err := Resolve(file, func(k string) string { return env[k] }, flags)
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != "127.0.0.1:3" || c.Workers != 5 || c.IdleTimeout != time.Minute || c.PerTarget != 2 {
		t.Errorf("resolved %+v", c)
	}
	src := map[string]Source{}
	for _, v := range vals {
		src[v.Key] = v.Source
	}
	want := map[string]Source{"listen": FromFlag, "workers": FromEnv, "idle_timeout": FromFile, "per_target": FromDefault}
	for k, s := range want {
		if src[k] != s {
			t.Errorf("%s from %s, want %s", k, src[k], s)
		}
	}
	if len(vals) != len(Settings) {
		t.Errorf("%d values for %d settings", len(vals), len(Settings))
	}
}

// The cluster's settings: replicas (0 allowed: no copies on other nodes)
// and lease, from the environment.
func TestClusterSettings(t *testing.T) {
	c, _, err := Resolve(nil, nil, nil)
	if err != nil || c.Replicas != 2 || c.Lease != 10*time.Second {
		t.Fatalf("defaults: replicas %d lease %s %v", c.Replicas, c.Lease, err)
	}
	env := map[string]string{"CPM_REPLICAS": "0", "CPM_LEASE": "4s"}
	c, _, err = Resolve(nil, func(k string) string { return env[k] }, nil)
	if err != nil || c.Replicas != 0 || c.Lease != 4*time.Second {
		t.Fatalf("from the environment: replicas %d lease %s %v", c.Replicas, c.Lease, err)
	}
}

// Synchronous replication: one replica by default, within 10 s; 0 turns
// it off.
func TestSyncReplicationSettings(t *testing.T) {
	c, _, err := Resolve(nil, nil, nil)
	if err != nil || c.SyncReplicas != 1 || c.SyncTimeout != 10*time.Second {
		t.Fatalf("defaults: sync_replicas %d sync_timeout %s %v", c.SyncReplicas, c.SyncTimeout, err)
	}
	env := map[string]string{"CPM_SYNC_REPLICAS": "0", "CPM_SYNC_TIMEOUT": "2s"}
	c, _, err = Resolve(nil, func(k string) string { return env[k] }, map[string]string{"sync_replicas": "2"})
	if err != nil || c.SyncReplicas != 2 || c.SyncTimeout != 2*time.Second {
		t.Fatalf("flag and environment: sync_replicas %d sync_timeout %s %v", c.SyncReplicas, c.SyncTimeout, err)
	}
}

func TestBadValuesAreErrors(t *testing.T) {
	tests := []struct {
		key, value, want string
	}{
		{"listen", "nowhere", "want HOST:PORT"},
		{"listen", "", "want HOST:PORT"},
		{"listen", "127.0.0.1:99999", "bad port"},
		{"git_listen", "h ost:1", "bad host"},
		{"idle_timeout", "ten minutes", "want a duration"},
		{"idle_timeout", "-1s", "at least"},
		{"handshake_timeout", "0", "at least"},
		{"workers", "0", "whole number"},
		{"workers", "many", "whole number"},
		{"log_level", "loud", "one of"},
		{"log_format", "xml", "one of"},
		{"data_dir", " ", "empty"},
		{"backoff_max", "1s", "below backoff_min"},
		{"replicas", "-1", "whole number from 0"},
		{"replicas", "two", "whole number from 0"},
		{"lease", "1s", "at least 3s"},
		{"sync_replicas", "-1", "whole number from 0"},
		{"sync_timeout", "0", "at least"},
		{"sync_timeout", "soon", "want a duration"},
	}
	for _, tt := range tests {
		file := map[string]string{tt.key: tt.value}
		if tt.key == "backoff_max" {
			file["backoff_min"] = "10s"
		}
		_, _, err := Resolve(file, nil, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s=%q: %v, want %q", tt.key, tt.value, err, tt.want)
		}
	}
	// The error says where the bad value came from.
	_, _, err := Resolve(nil, func(k string) string {
		if k == "CPM_WORKERS" {
			return "x"
		}
		return ""
	}, nil)
	if err == nil || !strings.Contains(err.Error(), "from CPM_WORKERS") {
		t.Errorf("env error: %v", err)
	}
	if _, _, err := Resolve(nil, nil, map[string]string{"repack": "soon"}); err == nil || !strings.Contains(err.Error(), "from --repack") {
		t.Errorf("flag error: %v", err)
	}
}

func TestDefaultsAreValid(t *testing.T) {
	c, _, err := Resolve(nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "./cpm-data" || c.Listen != "127.0.0.1:2222" || c.LogFormat != "json" {
		t.Errorf("defaults %+v", c)
	}
}

// The README documents every setting in one table.
func TestEverySettingIsDocumented(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range Settings {
		if !strings.Contains(string(readme), "| `"+s.Key+"` |") {
			t.Errorf("README has no row for %s", s.Key)
		}
	}
}

// The example that deploy/ ships is a valid configuration.
func TestDeployExampleIsValid(t *testing.T) {
	file, err := Load("../../deploy/etc/cpm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Resolve(file, nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestStartups(t *testing.T) {
	tests := []struct {
		v       string
		want    Startups
		wantErr bool
	}{
		{"128:30:256", Startups{128, 30, 256}, false},
		{"10:0:100", Startups{10, 0, 100}, false},
		{"20", Startups{20, 100, 20}, false},
		{"5:100:5", Startups{5, 100, 5}, false},
		{"0", Startups{}, true},
		{"64:30", Startups{}, true},
		{"64:30:32", Startups{}, true},
		{"64:101:128", Startups{}, true},
		{"64:-1:128", Startups{}, true},
		{"a:b:c", Startups{}, true},
		{"1:2:3:4", Startups{}, true},
	}
	for _, tt := range tests {
		var got Startups
		err := startups(&got, tt.v)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("startups(%q) = %+v, %v", tt.v, got, err)
		}
	}
}

// max_startups in a YAML file, quoted or not, is the three numbers.
func TestStartupsInYAML(t *testing.T) {
	for _, body := range []string{"max_startups: \"10:30:60\"\n", "max_startups: 10:30:60\n"} {
		p := filepath.Join(t.TempDir(), "c.yaml")
		os.WriteFile(p, []byte(body), 0o600)
		file, err := Load(p)
		if err != nil {
			t.Fatal(err)
		}
		c, _, err := Resolve(file, nil, nil)
		if err != nil || c.MaxStartups != (Startups{10, 30, 60}) {
			t.Errorf("%q: %+v %v", body, c.MaxStartups, err)
		}
	}
}

func TestDatabasePasswordNeverShown(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "CPM_DATABASE" {
				return v
			}
			return ""
		}
	}
	c, vals, err := Resolve(nil, env("postgres://cpm:s3cret@db.example:5432/cpm"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Database != "postgres://cpm:s3cret@db.example:5432/cpm" {
		t.Errorf("Database = %q", c.Database)
	}
	for _, v := range vals {
		if strings.Contains(v.Value, "s3cret") {
			t.Errorf("config show would print the password: %+v", v)
		}
	}
	for _, bad := range []string{"host=db password=s3cret", "mysql://cpm:s3cret@db/cpm", "postgres://cpm:s3cret@/cpm"} {
		_, _, err := Resolve(nil, env(bad), nil)
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("database %q: %v", bad, err)
		}
	}
}

func TestHTTPSettings(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want string // BaseURL, or "error"
	}{
		{map[string]string{}, ""},
		{map[string]string{"CPM_HTTP_LISTEN": "127.0.0.1:8080"}, "http://127.0.0.1:8080"},
		{map[string]string{"CPM_HTTP_LISTEN": ":443", "CPM_TLS_CERT": "c", "CPM_TLS_KEY": "k"}, "https://localhost"},
		{map[string]string{"CPM_HTTP_LISTEN": "0.0.0.0:80"}, "http://localhost"},
		{map[string]string{"CPM_HTTP_LISTEN": ":8443", "CPM_HTTP_URL": "https://git.example.com/"}, "https://git.example.com"},
		{map[string]string{"CPM_TLS_CERT": "c"}, "error"},
		{map[string]string{"CPM_HTTP_URL": "ftp://x"}, "error"},
		{map[string]string{"CPM_HTTP_URL": "https://x/?q=1"}, "error"},
		{map[string]string{"CPM_HTTP_URL": "https://u:p@x"}, "error"},
		{map[string]string{"CPM_HTTP_URL": `https://x/"><script>`}, "error"},
		{map[string]string{"CPM_HTTP_LISTEN": "nohost"}, "error"},
	} {
		c, _, err := Resolve(nil, func(k string) string { return tc.env[k] }, nil)
		switch {
		case tc.want == "error" && err == nil:
			t.Errorf("%v: accepted, %q", tc.env, c.HTTP.BaseURL())
		case tc.want != "error" && err != nil:
			t.Errorf("%v: %v", tc.env, err)
		case tc.want != "error" && c.HTTP.BaseURL() != tc.want:
			t.Errorf("%v: BaseURL %q, want %q", tc.env, c.HTTP.BaseURL(), tc.want)
		}
	}
}

// TestTokenURL: Git LFS hands tokens only for http_url or a specific
// listen address, never for a wildcard's guessed localhost or behind a
// proxy without http_url.
func TestTokenURL(t *testing.T) {
	for _, tc := range []struct {
		h       HTTP
		proxied bool
		want    string // "error": refused
	}{
		{HTTP{Listen: "127.0.0.1:8080"}, false, "http://127.0.0.1:8080"},
		{HTTP{Listen: ":8080"}, false, "error"},
		{HTTP{Listen: "0.0.0.0:8080"}, false, "error"},
		{HTTP{Listen: "[::]:8080"}, false, "error"},
		{HTTP{Listen: "127.0.0.1:8080"}, true, "error"},
		{HTTP{Listen: "127.0.0.1:8443", TLSCert: "c", TLSKey: "k"}, true, "https://127.0.0.1:8443"},
		{HTTP{Listen: ":8080", URL: "https://git.example.com"}, true, "https://git.example.com"},
		{HTTP{}, false, ""},
	} {
		got, err := tc.h.TokenURL(tc.proxied)
		switch {
		case tc.want == "error" && err == nil:
			t.Errorf("%+v proxied=%v: %q, want a refusal", tc.h, tc.proxied, got)
		case tc.want == "error" && !strings.Contains(err.Error(), "http_url"):
			t.Errorf("%+v: %v does not name http_url", tc.h, err)
		case tc.want != "error" && (err != nil || got != tc.want):
			t.Errorf("%+v proxied=%v: %q %v, want %q", tc.h, tc.proxied, got, err, tc.want)
		}
	}
}
