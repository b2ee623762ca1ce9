// Package docs holds cpm's own design documents (ARCHITECTURE.md). It has
// no code; its tests keep the project standalone: every document a file
// of the project cites is in the project, and the architecture names
// every CPM_ variable that cpm's processes pass each other.
package docs
