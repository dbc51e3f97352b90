package containerd

import "github.com/exit137-exporter/exit137-exporter/tracker"

// The labels the CRI plugin sets on a kubelet's containers, and nerdctl's
// name label.
const (
	labelCRIKind       = "io.cri-containerd.kind"
	labelPodNamespace  = "io.kubernetes.pod.namespace"
	labelPodName       = "io.kubernetes.pod.name"
	labelPodUID        = "io.kubernetes.pod.uid"
	labelContainerName = "io.kubernetes.container.name"
	labelNerdctlName   = "nerdctl/name"

	criKindSandbox   = "sandbox"
	criKindContainer = "container"
)

// isSandbox reports whether a container is a pod's sandbox (its pause
// container): the pod's plumbing, not a workload, so never counted.
func isSandbox(labels map[string]string) bool { return labels[labelCRIKind] == criKindSandbox }

// isCRIContainer reports whether the CRI plugin made this workload
// container, so that its RuntimeService knows its exit after the task is
// gone.
func isCRIContainer(labels map[string]string) bool { return labels[labelCRIKind] == criKindContainer }

// metaOf names a container. A kubelet's container is namespace/pod/container,
// the name its restarts (each a new container id) share; any other is its
// nerdctl name, or its id.
func metaOf(id, image string, labels map[string]string) tracker.Meta {
	m := tracker.Meta{ID: id, Name: id, Image: image,
		Namespace: labels[labelPodNamespace], Pod: labels[labelPodName], PodUID: labels[labelPodUID],
		Container: labels[labelContainerName]}
	switch {
	case m.Namespace != "" && m.Pod != "" && m.Container != "":
		m.Name = m.Namespace + "/" + m.Pod + "/" + m.Container
	case labels[labelNerdctlName] != "":
		m.Name = labels[labelNerdctlName]
	}
	return m
}
