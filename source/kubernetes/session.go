package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// eventSelector picks the kubelet's events about pods; the session keeps
// those of pods on this node.
const eventSelector = "involvedObject.kind=Pod,source=kubelet"

const (
	// listTimeout bounds one list call.
	listTimeout = 30 * time.Second
	// listPage is how many events a list page holds.
	listPage = 500
	// watchSeconds is how long the API server keeps a watch open before
	// it ends it and the session reopens it where it was.
	watchSeconds = 300
	// expireEvery is how often deleted pods are forgotten.
	expireEvery = time.Minute
	// quickEnd: a watch the server ends this soon with nothing on it
	// fails the session (backoff), so a server that ends every watch at
	// once is not asked again in a busy loop.
	quickEnd = time.Second
)

var (
	errNotYet = errors.New("not read yet")
	// errExpired: a watch's resource version is too old; relist.
	errExpired = errors.New("watch expired")
)

// client builds the API client from the kubeconfig or the pod's service
// account, read anew at each connect (rotated credentials).
func (s *Source) client() (*apiClient, error) {
	cfg, err := loadConfig(s.opts.Kubeconfig)
	var c *apiClient
	if err == nil {
		c, err = newClient(cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client config: %w", err)
	}
	return c, nil
}

// session lists the node's pods and the kubelet's events, then follows
// both; a watch too old to resume is relisted without going down.
func (s *Source) session(ctx context.Context) (established bool, err error) {
	c, err := s.client()
	if err != nil {
		return false, err
	}
	defer c.close()
	for {
		podRV, eventRV, err := s.list(ctx, c)
		if err != nil {
			return established, err
		}
		if !established {
			established = true
			s.setDown(time.Time{}, nil)
			s.health.SetUp(true, s.logger, nil)
		}
		if err := s.follow(ctx, c, podRV, eventRV); !errors.Is(err, errExpired) {
			return true, err
		}
	}
}

func (s *Source) podSelector() string { return "spec.nodeName=" + s.opts.Node }

// list reads the pods, then the events (whose pods must be known), and
// returns the resource versions to watch from.
func (s *Source) list(ctx context.Context, c *apiClient) (podRV, eventRV string, err error) {
	ctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	var pods podList
	if err := c.list(ctx, "pods", url.Values{"fieldSelector": {s.podSelector()}}, &pods); err != nil {
		return "", "", fmt.Errorf("list pods: %w", err)
	}
	s.node.podsListed(pods.Items, s.now())
	var events []apiEvent
	query := url.Values{"fieldSelector": {eventSelector}, "limit": {strconv.Itoa(listPage)}}
	for {
		var page eventList
		if err := c.list(ctx, "events", query, &page); err != nil {
			return "", "", fmt.Errorf("list events: %w", err)
		}
		events = append(events, page.Items...)
		if page.Metadata.Continue == "" {
			eventRV = page.Metadata.ResourceVersion
			break
		}
		query.Set("continue", page.Metadata.Continue)
	}
	s.node.eventsListed(events)
	return pods.Metadata.ResourceVersion, eventRV, nil
}

// stream is one watch, reopened where it left off when the server ends it.
type stream struct {
	c        *apiClient
	resource string
	sel      string
	rv       string
	w        *watch
	// handle takes an event's object and returns its resource version.
	handle func(typ string, obj json.RawMessage) (rv string, err error)
	opened time.Time
	events int // on the open watch
}

func (st *stream) start(ctx context.Context) error {
	w, err := st.c.watch(ctx, st.resource, url.Values{"fieldSelector": {st.sel}, "resourceVersion": {st.rv},
		"allowWatchBookmarks": {"true"}, "timeoutSeconds": {strconv.Itoa(watchSeconds)}, "watch": {"true"}})
	if err != nil {
		return fmt.Errorf("watch %s: %w", st.resource, err)
	}
	st.w, st.opened, st.events = w, time.Now(), 0
	return nil
}

// take handles one watch event; a closed watch is reopened.
func (st *stream) take(ctx context.Context, ev watchEvent, open bool) error {
	if !open {
		if st.events == 0 && time.Since(st.opened) < quickEnd {
			return fmt.Errorf("watch %s: ended at once", st.resource)
		}
		return st.start(ctx)
	}
	st.events++
	if ev.err != nil {
		return fmt.Errorf("watch %s: %w", st.resource, ev.err)
	}
	if ev.Type == eventError {
		status := &apiStatus{}
		if err := json.Unmarshal(ev.Object, status); err != nil {
			return fmt.Errorf("watch %s: error event: %w", st.resource, err)
		}
		if status.expired() {
			return errExpired
		}
		return fmt.Errorf("watch %s: %w", st.resource, status)
	}
	rv, err := st.handle(ev.Type, ev.Object)
	if err != nil {
		return fmt.Errorf("watch %s: %w", st.resource, err)
	}
	st.rv = rv
	return nil
}

// follow watches the pods and the events from the lists' versions until
// ctx ends or a watch fails.
func (s *Source) follow(ctx context.Context, c *apiClient, podRV, eventRV string) error {
	pods := &stream{c: c, resource: "pods", sel: s.podSelector(), rv: podRV, handle: s.podChange}
	events := &stream{c: c, resource: "events", sel: eventSelector, rv: eventRV, handle: s.eventChange}
	for _, st := range [...]*stream{pods, events} {
		if err := st.start(ctx); err != nil {
			return err
		}
		defer func() { st.w.stop() }()
	}
	tick := time.NewTicker(expireEvery)
	defer tick.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			s.node.expire(s.now())
		case ev, open := <-pods.w.events:
			err = pods.take(ctx, ev, open)
		case ev, open := <-events.w.events:
			err = events.take(ctx, ev, open)
		}
		if err != nil {
			return err
		}
	}
}

// podChange takes a pod watch's event; a bookmark only moves the version.
func (s *Source) podChange(typ string, obj json.RawMessage) (string, error) {
	p := &apiPod{}
	if err := json.Unmarshal(obj, p); err != nil {
		return "", err
	}
	switch typ {
	case eventBookmark:
	case eventDeleted:
		s.node.podGone(p, s.now())
	default:
		s.node.podSeen(p, s.now())
	}
	return p.ResourceVersion, nil
}

// eventChange takes an event watch's event.
func (s *Source) eventChange(typ string, obj json.RawMessage) (string, error) {
	e := &apiEvent{}
	if err := json.Unmarshal(obj, e); err != nil {
		return "", err
	}
	switch typ {
	case eventBookmark:
	case eventDeleted:
		s.node.eventGone(e)
	default:
		s.node.eventSeen(e)
	}
	return e.ResourceVersion, nil
}
