// Package config reads cpm's YAML configuration file. Unknown keys and
// malformed values are errors, never silently ignored.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"go.yaml.in/yaml/v3"

	"cpm/internal/datadir"
)

// File is the content of the configuration file.
type File struct {
	DataDir string `yaml:"data_dir"`
}

// maxSize bounds the file; a configuration is a few hundred bytes.
const maxSize = 1 << 20

// Load reads path. An empty path means no file: every value at its default.
func Load(path string) (File, error) {
	var f File
	if path == "" {
		return f, nil
	}
	fh, err := os.Open(path)
	if err != nil {
		return f, fmt.Errorf("config: %w", err)
	}
	defer fh.Close()
	body, err := io.ReadAll(io.LimitReader(fh, maxSize+1))
	if err != nil {
		return f, fmt.Errorf("config %s: %w", path, err)
	}
	if len(body) > maxSize {
		return f, fmt.Errorf("config %s: larger than %d bytes", path, maxSize)
	}
	dec := yaml.NewDecoder(bytes.NewReader(body))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return f, fmt.Errorf("config %s: %s", path, oneLine(err.Error()))
	}
	return f, nil
}

// DataDir picks the data directory: the flag or environment value (kong
// has already merged those) over the file's value over the default.
func DataDir(flagOrEnv string, f File) string {
	if flagOrEnv != "" {
		return flagOrEnv
	}
	return f.DataDir
}

func oneLine(s string) string {
	return string(bytes.Join(bytes.Fields([]byte(s)), []byte(" ")))
}

// Flags are the options every cpm command takes, for embedding in a kong
// command line.
type Flags struct {
	DataDir string `name:"data-dir" env:"CPM_DATA_DIR" placeholder:"DIR" help:"Data directory (default ./cpm-data)."`
	Config  string `name:"config" env:"CPM_CONFIG" placeholder:"FILE" help:"YAML configuration file."`
}

// Dir resolves the data directory: flag or environment, then the file,
// then the default.
func (f Flags) Dir() (datadir.Dir, error) {
	file, err := Load(f.Config)
	if err != nil {
		return "", err
	}
	return datadir.New(DataDir(f.DataDir, file))
}
