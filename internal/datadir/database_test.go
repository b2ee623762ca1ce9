package datadir

import (
	"os"
	"strings"
	"testing"
)

func TestDatabase(t *testing.T) {
	const url = "postgres://cpm@db/cpm"
	for _, tt := range []struct {
		name    string
		file    *string // nil: no file
		setting string
		want    string
		wantErr string
	}{
		{"sqlite", nil, "", "", ""},
		{"recorded", ptr(url + "\n"), "", url, ""},
		{"setting equals the recorded", ptr(url + "\n"), url, url, ""},
		{"setting on a SQLite directory", nil, url, "", "on SQLite"},
		{"setting differs from the recorded", ptr(url), "postgres://cpm@other/cpm", "", "not the database recorded"},
		{"empty file", ptr("\n"), "", "", "is empty"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := Dir(t.TempDir())
			if tt.file != nil {
				if err := os.WriteFile(d.DatabaseFile(), []byte(*tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := d.Database(tt.setting)
			if got != tt.want || (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Database(%q) = %q, %v; want %q, error with %q", tt.setting, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func ptr(s string) *string { return &s }

func TestNodeName(t *testing.T) {
	for _, tt := range []struct {
		name    string
		file    *string
		want    string
		wantErr bool
	}{
		{"no file: not in a cluster", nil, "", false},
		{"a name", ptr("n1\n"), "n1", false},
		{"empty", ptr("\n"), "", true},
		{"two words", ptr("n1 n2\n"), "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := Dir(t.TempDir())
			if tt.file != nil {
				if err := os.WriteFile(d.NodeFile(), []byte(*tt.file), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := d.NodeName()
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("NodeName() = %q, %v; want %q, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}
