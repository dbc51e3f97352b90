// Package kmsg reads kernel OOM kills from /dev/kmsg.
package kmsg

// Source tails /dev/kmsg and turns OOM-kill lines into evidence.
type Source struct{}
