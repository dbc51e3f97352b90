package kubernetes

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v2"
)

// restConfig is where the API is and how to authenticate to it: what the
// source takes from a kubeconfig or the pod's service account. A *Data
// field, when set, overrides its file.
type restConfig struct {
	server        string
	tlsServerName string
	insecure      bool
	caFile        string
	caData        []byte
	certFile      string
	certData      []byte
	keyFile       string
	keyData       []byte
	token         string
	// tokenFile is read again while the client runs: a bound service
	// account token rotates.
	tokenFile string
}

// The service account's files in a pod.
const (
	serviceAccountToken = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	serviceAccountCA    = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
)

// inClusterConfig is the pod's service account's config, from the
// environment the kubelet gives every pod.
func inClusterConfig(getenv func(string) string) (restConfig, error) {
	host, port := getenv("KUBERNETES_SERVICE_HOST"), getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return restConfig{}, errors.New("unable to load in-cluster configuration, KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be defined")
	}
	return restConfig{server: "https://" + net.JoinHostPort(host, port),
		caFile: serviceAccountCA, tokenFile: serviceAccountToken}, nil
}

// kubeconfig is the part of a kubeconfig file the source reads.
type kubeconfig struct {
	CurrentContext string `yaml:"current-context"`
	Contexts       []struct {
		Name    string `yaml:"name"`
		Context struct {
			Cluster string `yaml:"cluster"`
			User    string `yaml:"user"`
		} `yaml:"context"`
	} `yaml:"contexts"`
	Clusters []struct {
		Name    string `yaml:"name"`
		Cluster struct {
			Server        string `yaml:"server"`
			TLSServerName string `yaml:"tls-server-name"`
			Insecure      bool   `yaml:"insecure-skip-tls-verify"`
			CA            string `yaml:"certificate-authority"`
			CAData        string `yaml:"certificate-authority-data"`
		} `yaml:"cluster"`
	} `yaml:"clusters"`
	Users []struct {
		Name string `yaml:"name"`
		User struct {
			Token        string `yaml:"token"`
			TokenFile    string `yaml:"tokenFile"`
			Cert         string `yaml:"client-certificate"`
			CertData     string `yaml:"client-certificate-data"`
			Key          string `yaml:"client-key"`
			KeyData      string `yaml:"client-key-data"`
			Exec         any    `yaml:"exec"`
			AuthProvider any    `yaml:"auth-provider"`
		} `yaml:"user"`
	} `yaml:"users"`
}

// parseKubeconfig reads the current context's cluster and user from a
// kubeconfig; relative file paths in it are relative to dir, the file's
// directory, as kubectl has them.
func parseKubeconfig(data []byte, dir string) (restConfig, error) {
	var kc kubeconfig
	if err := yaml.Unmarshal(data, &kc); err != nil {
		return restConfig{}, err
	}
	if kc.CurrentContext == "" {
		return restConfig{}, errors.New("no current-context")
	}
	var clusterName, userName string
	found := false
	for _, c := range kc.Contexts {
		if c.Name == kc.CurrentContext {
			clusterName, userName, found = c.Context.Cluster, c.Context.User, true
		}
	}
	if !found {
		return restConfig{}, fmt.Errorf("context %q not found", kc.CurrentContext)
	}
	var cfg restConfig
	var err error
	for _, c := range kc.Clusters {
		if c.Name != clusterName {
			continue
		}
		cl := c.Cluster
		cfg.server, cfg.tlsServerName, cfg.insecure, cfg.caFile = cl.Server, cl.TLSServerName, cl.Insecure, resolve(dir, cl.CA)
		if cfg.caData, err = decodeData("certificate-authority-data", cl.CAData); err != nil {
			return restConfig{}, err
		}
	}
	if cfg.server == "" {
		return restConfig{}, fmt.Errorf("no server found for cluster %q", clusterName)
	}
	for _, u := range kc.Users {
		if u.Name != userName {
			continue
		}
		us := u.User
		if us.Exec != nil || us.AuthProvider != nil {
			return restConfig{}, fmt.Errorf("user %q: exec and auth-provider credentials are not supported; use a token, a token file or a client certificate", userName)
		}
		cfg.token, cfg.tokenFile = us.Token, resolve(dir, us.TokenFile)
		cfg.certFile, cfg.keyFile = resolve(dir, us.Cert), resolve(dir, us.Key)
		if cfg.certData, err = decodeData("client-certificate-data", us.CertData); err != nil {
			return restConfig{}, err
		}
		if cfg.keyData, err = decodeData("client-key-data", us.KeyData); err != nil {
			return restConfig{}, err
		}
	}
	return cfg, nil
}

// decodeData decodes a kubeconfig's base64 *-data field ("" → nil).
func decodeData(field, s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return b, nil
}

// resolve makes a kubeconfig's relative path relative to its directory.
func resolve(dir, path string) string {
	if path == "" || filepath.IsAbs(path) {
		return path
	}
	return filepath.Join(dir, path)
}

// loadConfig reads the kubeconfig at path, or the in-cluster config when
// path is empty.
func loadConfig(path string) (restConfig, error) {
	if path == "" {
		return inClusterConfig(os.Getenv)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return restConfig{}, err
	}
	cfg, err := parseKubeconfig(data, filepath.Dir(path))
	if err != nil {
		return restConfig{}, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}
