package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
		{"data_dri: /srv/cpm\n", "", "field data_dri not found"},
		{"data_dir: [1, 2]\n", "", "cannot unmarshal"},
		{"data_dir: /a\n---\ndata_dir: /b\n", "/a", ""},
		{":\n\t- x", "", "config"},
	}
	for _, tt := range tests {
		f, err := Load(write(tt.body))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
				t.Errorf("Load(%q) = %v, want one-line error containing %q", tt.body, err, tt.wantErr)
			}
			continue
		}
		if err != nil || f.DataDir != tt.want {
			t.Errorf("Load(%q) = %+v, %v", tt.body, f, err)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("missing file accepted")
	}
	if f, err := Load(""); err != nil || f.DataDir != "" {
		t.Errorf("no file: %+v %v", f, err)
	}
}

func TestDataDirPrecedence(t *testing.T) {
	if got := DataDir("/flag", File{DataDir: "/file"}); got != "/flag" {
		t.Errorf("flag lost: %s", got)
	}
	if got := DataDir("", File{DataDir: "/file"}); got != "/file" {
		t.Errorf("file lost: %s", got)
	}
}
