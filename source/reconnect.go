package source

import (
	"context"
	"log/slog"
	"time"
)

// Reconnect runs session until ctx ends, marking the source down and
// waiting between attempts: 1s, doubling to maxBackoff, back to 1s after a
// session that got going (established). It never gives up: a daemon or
// bus that comes back is picked up.
func Reconnect(ctx context.Context, h *Health, logger *slog.Logger, maxBackoff time.Duration,
	session func(ctx context.Context) (established bool, err error)) {
	backoff := time.Second
	for ctx.Err() == nil {
		established, err := session(ctx)
		if ctx.Err() != nil {
			return
		}
		if established {
			backoff = time.Second
		}
		h.SetUp(false, logger, err)
		h.Error(logger, h.name+" unavailable; retrying in "+backoff.String(), err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		if backoff *= 2; backoff > maxBackoff {
			backoff = maxBackoff
		}
	}
}
