module cpm

go 1.26.8

require (
	github.com/mattn/go-sqlite3 v1.14.53
	golang.org/x/crypto v0.58.0
)

require golang.org/x/sys v0.49.0 // indirect
