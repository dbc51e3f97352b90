package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
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

// api lists and watches core/v1 resources. It is a REST client with a
// scheme of core/v1 alone: client-go's typed core/v1 client links every
// API group's types and apply configurations (an exporter of 23 MB
// became 59 MB with it, measured).
type api struct{ rc *rest.RESTClient }

// coreCodecs decode core/v1 objects, lists, watch events and statuses.
var coreCodecs = func() serializer.CodecFactory {
	scheme := runtime.NewScheme()
	if err := v1.AddToScheme(scheme); err != nil {
		panic(err)
	}
	return serializer.NewCodecFactory(scheme)
}()

// client builds the API client from the kubeconfig or the pod's service
// account, read anew at each connect (rotated credentials).
func (s *Source) client() (api, error) {
	var cfg *rest.Config
	var err error
	if s.opts.Kubeconfig == "" {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", s.opts.Kubeconfig)
	}
	if err != nil {
		return api{}, fmt.Errorf("kubernetes client config: %w", err)
	}
	cfg.UserAgent = "exit137-exporter"
	cfg.APIPath = "/api"
	cfg.GroupVersion = &v1.SchemeGroupVersion
	cfg.ContentType = runtime.ContentTypeJSON
	cfg.NegotiatedSerializer = coreCodecs.WithoutConversion()
	rc, err := rest.RESTClientFor(cfg)
	return api{rc}, err
}

func (a api) list(ctx context.Context, resource string, opts metav1.ListOptions, into runtime.Object) error {
	return a.rc.Get().Resource(resource).VersionedParams(&opts, metav1.ParameterCodec).Do(ctx).Into(into)
}

func (a api) watch(ctx context.Context, resource string, opts metav1.ListOptions) (watch.Interface, error) {
	opts.Watch = true
	return a.rc.Get().Resource(resource).VersionedParams(&opts, metav1.ParameterCodec).Watch(ctx)
}

// session lists the node's pods and the kubelet's events, then follows
// both; a watch too old to resume is relisted without going down.
func (s *Source) session(ctx context.Context) (established bool, err error) {
	c, err := s.client()
	if err != nil {
		return false, err
	}
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
func (s *Source) list(ctx context.Context, c api) (podRV, eventRV string, err error) {
	ctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	var pods v1.PodList
	if err := c.list(ctx, "pods", metav1.ListOptions{FieldSelector: s.podSelector()}, &pods); err != nil {
		return "", "", fmt.Errorf("list pods: %w", err)
	}
	s.node.podsListed(pods.Items, s.now())
	var events []v1.Event
	opts := metav1.ListOptions{FieldSelector: eventSelector, Limit: listPage}
	for {
		var page v1.EventList
		if err := c.list(ctx, "events", opts, &page); err != nil {
			return "", "", fmt.Errorf("list events: %w", err)
		}
		events = append(events, page.Items...)
		if opts.Continue = page.Continue; opts.Continue == "" {
			eventRV = page.ResourceVersion
			break
		}
	}
	s.node.eventsListed(events)
	return pods.ResourceVersion, eventRV, nil
}

// stream is one watch, reopened where it left off when the server ends it.
type stream struct {
	c        api
	resource string
	sel      string
	rv       string
	w        watch.Interface
	handle   func(watch.EventType, runtime.Object)
	opened   time.Time
	events   int // on the open watch
}

func (st *stream) start(ctx context.Context) error {
	timeout := int64(watchSeconds)
	w, err := st.c.watch(ctx, st.resource, metav1.ListOptions{FieldSelector: st.sel, ResourceVersion: st.rv,
		AllowWatchBookmarks: true, TimeoutSeconds: &timeout})
	if err != nil {
		return fmt.Errorf("watch %s: %w", st.resource, err)
	}
	st.w, st.opened, st.events = w, time.Now(), 0
	return nil
}

// take handles one watch event; a closed watch is reopened.
func (st *stream) take(ctx context.Context, ev watch.Event, open bool) error {
	if !open {
		if st.events == 0 && time.Since(st.opened) < quickEnd {
			return fmt.Errorf("watch %s: ended at once", st.resource)
		}
		return st.start(ctx)
	}
	st.events++
	if ev.Type == watch.Error {
		err := apierrors.FromObject(ev.Object)
		if apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
			return errExpired
		}
		return fmt.Errorf("watch %s: %w", st.resource, err)
	}
	if m, err := meta.Accessor(ev.Object); err == nil {
		st.rv = m.GetResourceVersion()
	}
	if ev.Type != watch.Bookmark {
		st.handle(ev.Type, ev.Object)
	}
	return nil
}

// follow watches the pods and the events from the lists' versions until
// ctx ends or a watch fails.
func (s *Source) follow(ctx context.Context, c api, podRV, eventRV string) error {
	pods := &stream{c: c, resource: "pods", sel: s.podSelector(), rv: podRV, handle: s.podChange}
	events := &stream{c: c, resource: "events", sel: eventSelector, rv: eventRV, handle: s.eventChange}
	for _, st := range [...]*stream{pods, events} {
		if err := st.start(ctx); err != nil {
			return err
		}
		defer func() { st.w.Stop() }()
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
		case ev, open := <-pods.w.ResultChan():
			err = pods.take(ctx, ev, open)
		case ev, open := <-events.w.ResultChan():
			err = events.take(ctx, ev, open)
		}
		if err != nil {
			return err
		}
	}
}

func (s *Source) podChange(t watch.EventType, obj runtime.Object) {
	p, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	if t == watch.Deleted {
		s.node.podGone(p, s.now())
	} else {
		s.node.podSeen(p, s.now())
	}
}

func (s *Source) eventChange(t watch.EventType, obj runtime.Object) {
	e, ok := obj.(*v1.Event)
	if !ok {
		return
	}
	if t == watch.Deleted {
		s.node.eventGone(e)
	} else {
		s.node.eventSeen(e)
	}
}
