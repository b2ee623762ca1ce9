module cpm

go 1.26.8

require (
	github.com/alecthomas/kong v1.17.0
	github.com/mattn/go-sqlite3 v1.14.53
	go.yaml.in/yaml/v3 v3.0.6
	golang.org/x/crypto v0.58.0
)

require golang.org/x/sys v0.49.0 // indirect
