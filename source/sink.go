package source

import "github.com/exit137-exporter/exit137-exporter/attribution"

// Sink receives evidence. The tracker implements it; sources only ever
// see this interface, so they can be tested with a slice.
type Sink interface {
	AddEvidence(attribution.Evidence)
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(attribution.Evidence)

// AddEvidence calls f.
func (f SinkFunc) AddEvidence(e attribution.Evidence) { f(e) }
