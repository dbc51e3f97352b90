package kubernetes

import (
	"encoding/base64"
	"reflect"
	"strings"
	"testing"
)

// kubeconfigWith is a kubeconfig whose current context uses cluster
// "rig" and user "admin", each given by its YAML lines; another cluster
// and user are there to be ignored.
func kubeconfigWith(cluster, user string) string {
	return `apiVersion: v1
kind: Config
clusters:
- name: other
  cluster: {server: "https://other:6443"}
- name: rig
  cluster:
` + cluster + `
users:
- name: other
  user: {token: other-token}
- name: admin
  user:
` + user + `
contexts:
- name: other
  context: {cluster: other, user: other}
- name: rig
  context: {cluster: rig, user: admin}
current-context: rig
`
}

func TestParseKubeconfig(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	const server = `    server: https://127.0.0.1:6443`
	tests := []struct {
		name          string
		cluster, user string
		want          restConfig
		err           string
	}{
		{name: "token, CA file relative to the kubeconfig",
			cluster: server + "\n    certificate-authority: pki/ca.crt", user: "    token: secret",
			want: restConfig{server: "https://127.0.0.1:6443", caFile: "/etc/kube/pki/ca.crt", token: "secret"}},
		{name: "token file, CA file absolute",
			cluster: server + "\n    certificate-authority: /pki/ca.crt", user: "    tokenFile: /run/token",
			want: restConfig{server: "https://127.0.0.1:6443", caFile: "/pki/ca.crt", tokenFile: "/run/token"}},
		{name: "CA data",
			cluster: server + "\n    certificate-authority-data: " + b64("CA PEM"), user: "    token: secret",
			want: restConfig{server: "https://127.0.0.1:6443", caData: []byte("CA PEM"), token: "secret"}},
		{name: "client certificate files",
			cluster: server + "\n    insecure-skip-tls-verify: true\n    tls-server-name: kubernetes",
			user:    "    client-certificate: admin.crt\n    client-key: /pki/admin.key",
			want: restConfig{server: "https://127.0.0.1:6443", insecure: true, tlsServerName: "kubernetes",
				certFile: "/etc/kube/admin.crt", keyFile: "/pki/admin.key"}},
		{name: "client certificate data",
			cluster: server, user: "    client-certificate-data: " + b64("CERT") + "\n    client-key-data: " + b64("KEY"),
			want: restConfig{server: "https://127.0.0.1:6443", certData: []byte("CERT"), keyData: []byte("KEY")}},
		{name: "bad base64", cluster: server, user: "    client-key-data: not*base64", err: "client-key-data"},
		{name: "no server", cluster: "    insecure-skip-tls-verify: true", user: "    token: secret", err: `no server found for cluster "rig"`},
		{name: "exec plugin", cluster: server, user: "    exec: {command: aws}", err: "not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseKubeconfig([]byte(kubeconfigWith(tt.cluster, tt.user)), "/etc/kube")
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one saying %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseKubeconfigContext(t *testing.T) {
	for name, text := range map[string]string{
		"no current context": "clusters: []\n",
		"unknown context":    "current-context: gone\ncontexts: [{name: rig, context: {cluster: rig, user: admin}}]\n",
		"not YAML":           "current-context: [\n",
	} {
		if _, err := parseKubeconfig([]byte(text), "/"); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestInClusterConfig(t *testing.T) {
	env := map[string]string{"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
	got, err := inClusterConfig(func(k string) string { return env[k] })
	want := restConfig{server: "https://[fd00::1]:443", caFile: serviceAccountCA, tokenFile: serviceAccountToken}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v %v, want %+v", got, err, want)
	}
	if _, err := inClusterConfig(func(string) string { return "" }); err == nil {
		t.Error("outside a pod: no error")
	}
}
