// Package version names this build of cpm, for peers and operators.
package version

// Version is cpm's release; peers show it in discovery.
const Version = "0.4.0"
