package containerd

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/exit137-exporter/exit137-exporter/tracker"
)

// barrierTimeout bounds the wait for a barrier event to come back.
const barrierTimeout = 10 * time.Second

// received is one message of the subscription, or its end.
type received struct {
	env pbEnvelope
	err error
}

// session is one connection, in an order that loses nothing and counts
// nothing twice, although containerd replays no event:
//  1. subscribe, and publish a barrier event: once it comes back the
//     subscription is registered, and every later event is buffered;
//  2. reconcile against the container and task lists (and the CRI's
//     statuses), for what happened while no subscription was;
//  3. apply the events buffered meanwhile, and those up to a second
//     barrier published after the reconcile: every event containerd
//     published before the reconcile ended. The ledger matches them to the
//     runs the reconcile saw; a task exit among them gives an exit the
//     reconcile inferred its code, so those exits are decided only now
//     (CaughtUp);
//  4. follow the stream live.
func (s *Source) session(ctx context.Context) (streamed bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := s.dial(); err != nil {
		return false, err
	}
	defer s.conn.close()
	stream, err := s.conn.subscribe(ctx, s.filters())
	if err != nil {
		return false, fmt.Errorf("subscribe to events: %w", err)
	}
	msgs := make(chan received, 256)
	go func() {
		for {
			env, err := stream.recv()
			select {
			case msgs <- received{env, err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	var buffered []pbEnvelope
	if err := s.barrier(ctx, msgs, func(env pbEnvelope) { buffered = append(buffered, env) }); err != nil {
		return false, err
	}
	if err := s.reconcile(ctx); err != nil {
		return false, err
	}
	for _, env := range buffered {
		s.handle(ctx, env)
	}
	if err := s.barrier(ctx, msgs, func(env pbEnvelope) { s.handle(ctx, env) }); err != nil {
		return false, err
	}
	s.tracker.CaughtUp()
	s.health.SetUp(true, s.logger, nil)
	for {
		select {
		case m := <-msgs:
			if m.err != nil {
				return true, fmt.Errorf("event stream: %w", m.err)
			}
			if _, barrier := s.barrierSeq(m.env); !barrier {
				s.handle(ctx, m.env)
			}
		case <-ctx.Done():
			return true, ctx.Err()
		}
	}
}

// barrierTopic is where this source publishes its barriers; no one else
// subscribes to it.
func (s *Source) barrierTopic() string { return "/exit137-exporter/barrier/" + s.nonce }

// barrierSeq returns the number a barrier event carries, ok false for any
// other event.
func (s *Source) barrierSeq(env pbEnvelope) (seq uint64, ok bool) {
	if env.topic != s.barrierTopic() {
		return 0, false
	}
	if env.event.typeName() != "google.protobuf.UInt64Value" {
		return 0, true // not a number: no barrier awaited
	}
	n, err := decodeUInt64Value(env.event.value)
	if err != nil {
		return 0, true
	}
	return n, true
}

// filters subscribes to the followed topics of the followed namespaces,
// and to this source's barriers.
func (s *Source) filters() []string {
	filters := []string{"topic==" + strconv.Quote(s.barrierTopic())}
	for _, ns := range s.opts.Namespaces {
		for _, topic := range topics {
			filters = append(filters, "namespace=="+strconv.Quote(ns)+",topic=="+strconv.Quote(topic))
		}
	}
	return filters
}

// barrierRepeat is how often a barrier is published again while it has
// not come back: the subscription is registered on containerd's side
// after the subscribe call returns, and a barrier published before that
// reaches no one.
const barrierRepeat = 100 * time.Millisecond

// barrier publishes a numbered barrier event and hands every event
// received before it comes back to handle: containerd delivers a
// subscriber's events in the order it published them. Copies of earlier
// barriers are dropped.
func (s *Source) barrier(ctx context.Context, msgs <-chan received, handle func(pbEnvelope)) error {
	s.barriers++
	body := pbAny{typeURL: uint64ValueURL, value: encodeUInt64Value(s.barriers)}
	publish := func() error {
		if err := s.conn.publish(namespaced(ctx, s.opts.Namespaces[0]), s.barrierTopic(), body); err != nil {
			return fmt.Errorf("publish barrier event: %w", err)
		}
		return nil
	}
	if err := publish(); err != nil {
		return err
	}
	repeat := time.NewTicker(barrierRepeat)
	defer repeat.Stop()
	timeout := time.After(barrierTimeout)
	for {
		select {
		case m := <-msgs:
			if m.err != nil {
				return fmt.Errorf("event stream: %w", m.err)
			}
			if seq, ok := s.barrierSeq(m.env); !ok {
				handle(m.env)
			} else if seq == s.barriers {
				return nil
			}
		case <-repeat.C:
			if err := publish(); err != nil {
				return err
			}
		case <-timeout:
			return errors.New("the barrier event did not come back on the subscription")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// handle applies one event.
func (s *Source) handle(ctx context.Context, env pbEnvelope) {
	ev, err := decode(env)
	if err != nil {
		s.health.Error(s.logger, "containerd event not understood", err)
		return
	}
	s.health.Event()
	s.tracker.Seen(ev.at)
	if ev.topic == topicContainerDelete {
		s.removed(ev)
		return
	}
	info, ok := s.lookup(ctx, ev.namespace, ev.container, ev.image)
	if !ok || info.sandbox || ev.exec {
		return
	}
	switch ev.topic {
	case topicTaskStart:
		start := s.runs.started(ev.container, ev.pid, info.created)
		s.tracker.Upsert(tracker.Meta{ID: ev.container, Pid: ev.pid})
		s.tracker.Started(ev.container, ev.at)
		s.tracker.DescribeRun(ev.container, ev.at, tracker.RunState{Running: true, StartedAt: start, Pid: ev.pid})
		s.observeOOMKills(ev.container, ev.pid, ev.at)
	case topicTaskOOM:
		s.observeOOMKills(ev.container, 0, ev.at)
		s.tracker.AddEvidence(oomEvidence(ev))
	case topicTaskExit:
		s.observeOOMKills(ev.container, 0, ev.at)
		start := s.runs.exited(ev.container, ev.pid, ev.exitedAt, info.created)
		if s.tracker.Died(ev.container, ev.at, ev.exitCode) {
			s.tracker.DescribeDeath(ev.container, ev.at, tracker.RunState{StartedAt: start, FinishedAt: ev.exitedAt,
				ExitCode: ev.exitCode, Pid: ev.pid})
		}
	}
}

func (s *Source) removed(ev event) {
	info, known := s.known[ev.container]
	delete(s.known, ev.container)
	delete(s.runs, ev.container)
	if known && info.sandbox {
		return
	}
	s.tracker.Removed(ev.container, ev.at)
}

func (s *Source) observeOOMKills(id string, pid int, at time.Time) {
	if s.opts.OOMKills == nil {
		return
	}
	if n, ok := s.opts.OOMKills(id, pid); ok {
		s.tracker.ObserveOOMKills(id, n, at)
	}
}
