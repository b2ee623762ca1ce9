// Package config resolves cpm's settings: a YAML file, CPM_… environment
// variables and command-line flags, in that order of strength (flag over
// environment over file over default). Unknown keys and malformed values
// are errors, never silently ignored.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"

	"go.yaml.in/yaml/v3"

	"cpm/internal/printable"
)

// maxSize bounds the file; a configuration is a few hundred bytes.
const maxSize = 1 << 20

// Load reads the file at path into key → value. An empty path means no
// file. Only the keys in Settings are allowed, with scalar values.
func Load(path string) (map[string]string, error) {
	out := map[string]string{}
	if path == "" {
		return out, nil
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer fh.Close()
	body, err := io.ReadAll(io.LimitReader(fh, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if len(body) > maxSize {
		return nil, fmt.Errorf("config %s: larger than %d bytes", path, maxSize)
	}
	var raw map[string]yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(body)).Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config %s: %s", path, printable.Line(err.Error()))
	}
	for k, n := range raw {
		if n.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("config %s: %s: want a single value (line %d)", path, k, n.Line)
		}
		out[k] = n.Value
	}
	if err := checkKeys(out); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return out, nil
}

// Flags are the options every cpm command takes, for embedding in a kong
// command line. The data directory's environment variable (CPM_DATA_DIR)
// is read by Resolve, so that `config show` can tell it from the flag.
type Flags struct {
	DataDir  string  `name:"data-dir" placeholder:"DIR" help:"Data directory (default ./cpm-data; env CPM_DATA_DIR)."`
	Config   string  `name:"config" env:"CPM_CONFIG" placeholder:"FILE" help:"YAML configuration file."`
	Database *string `name:"database" config:"database" placeholder:"URL" help:"postgres:// URL of the metadata database (default: SQLite in the data directory; env CPM_DATABASE)."`
}

// Resolve loads the file and resolves every setting; given holds the
// flags given on the command line besides --data-dir, by key.
func (f Flags) Resolve(given map[string]string) (Config, []Value, error) {
	file, err := Load(f.Config)
	if err != nil {
		return Config{}, nil, err
	}
	flags := map[string]string{}
	for k, v := range given {
		flags[k] = v
	}
	if f.DataDir != "" {
		flags["data_dir"] = f.DataDir
	}
	if f.Database != nil {
		flags["database"] = *f.Database
	}
	return Resolve(file, os.Getenv, flags)
}

// Given collects the settings flags that were given on a command line:
// v is a struct (or pointer to one) whose *string fields carry a
// `config:"KEY"` tag; nil fields were not given. Embedded structs are
// walked too.
func Given(v any) map[string]string {
	out := map[string]string{}
	given(reflect.Indirect(reflect.ValueOf(v)), out)
	return out
}

func given(v reflect.Value, out map[string]string) {
	if v.Kind() != reflect.Struct {
		return
	}
	for i := 0; i < v.NumField(); i++ {
		f, sf := v.Field(i), v.Type().Field(i)
		if sf.Anonymous {
			given(f, out)
			continue
		}
		key := sf.Tag.Get("config")
		if key == "" || f.Kind() != reflect.Pointer || f.IsNil() {
			continue
		}
		if s, ok := f.Interface().(*string); ok {
			out[key] = *s
		}
	}
}
