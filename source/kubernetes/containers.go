package kubernetes

import (
	"strings"
	"time"
)

// statusUnknown is the reason of a status the kubelet makes up for a
// container it could not find (an evicted pod's, exit code 137): no
// container ran under it, so it names no run.
const statusUnknown = "ContainerStatusUnknown"

// stampSlack covers the API's whole-second stamps: an event stamped in
// the second a run started may be about that run.
const stampSlack = time.Second

// run is one run of a pod's container, as its status shows it.
type run struct {
	id                string // the runtime's container id, the scheme cut
	started, finished time.Time
}

// alive reports whether the run could have been alive at t.
func (r run) alive(t time.Time) bool {
	return !r.started.After(t.Add(stampSlack)) && (r.finished.IsZero() || !r.finished.Before(t.Add(-stampSlack)))
}

// aliveAt returns the id of the run of s that was alive at t: the
// current run, or the one before it (the status moved on to the restart
// before the event came).
func aliveAt(s *containerStatus, t time.Time) (string, bool) {
	for _, r := range runs(s) {
		if r.alive(t) {
			return r.id, true
		}
	}
	return "", false
}

func statusOf(p *apiPod, name string) *containerStatus {
	for _, ss := range [...][]containerStatus{p.Status.ContainerStatuses, p.Status.InitContainerStatuses} {
		for i := range ss {
			if ss[i].Name == name {
				return &ss[i]
			}
		}
	}
	return nil
}

// runs lists a status's runs, the current first; a run with no id or a
// made-up status is left out.
func runs(s *containerStatus) []run {
	var rs []run
	switch st := s.State; {
	case st.Running != nil:
		rs = append(rs, run{id: containerID(s.ContainerID), started: st.Running.StartedAt})
	case st.Terminated != nil:
		rs = append(rs, ended(st.Terminated))
	}
	if last := s.LastTerminationState.Terminated; last != nil {
		rs = append(rs, ended(last))
	}
	kept := rs[:0]
	for _, r := range rs {
		if r.id != "" && !r.started.IsZero() {
			kept = append(kept, r)
		}
	}
	return kept
}

// ended is a terminated run; a made-up status names none (its id is
// left empty).
func ended(t *stateTerminated) run {
	if t.Reason == statusUnknown {
		return run{}
	}
	return run{id: containerID(t.ContainerID), started: t.StartedAt, finished: t.FinishedAt}
}

// containerID cuts the runtime's scheme off a status's container id
// ("containerd://<64 hex>").
func containerID(s string) string {
	if _, id, ok := strings.Cut(s, "://"); ok {
		return id
	}
	return s
}

// runtimeUID is the pod uid the runtime's labels carry: a static pod's
// own, which its mirror pod in the API keeps in an annotation.
func runtimeUID(p *apiPod) string {
	if uid := p.Annotations[mirrorPodAnnotation]; uid != "" {
		return uid
	}
	return p.UID
}
