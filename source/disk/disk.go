// Package disk watches the filesystems whose exhaustion can take a
// container down.
package disk

// Source measures the watched paths with statfs.
type Source struct{}
