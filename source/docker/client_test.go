package docker

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseHost(t *testing.T) {
	tests := []struct {
		host                  string
		proto, addr, basePath string
		err                   string
	}{
		{"unix:///var/run/docker.sock", "unix", "/var/run/docker.sock", "", ""},
		{"unix:///run/user/1000/podman/podman.sock", "unix", "/run/user/1000/podman/podman.sock", "", ""},
		{"tcp://127.0.0.1:2375", "tcp", "127.0.0.1:2375", "", ""},
		{"tcp://docker.example:2376/base/", "tcp", "docker.example:2376", "/base", ""},
		{"tcp://[::1]:2375", "tcp", "[::1]:2375", "", ""},
		{"tcp://127.0.0.1", "", "", "", "no port"},
		{"ssh://me@host", "", "", "", "ssh:// is not supported"},
		{"npipe:////./pipe/docker_engine", "", "", "", "npipe:// is not supported"},
		{"fd://", "", "", "", "not an address"},
		{"/var/run/docker.sock", "", "", "", "not an address"},
		{"unix://" + strings.Repeat("x", 108), "", "", "", "longer than 107"},
	}
	for _, tt := range tests {
		proto, addr, base, err := parseHost(tt.host)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want one saying %q", tt.host, err, tt.err)
			}
			continue
		}
		if err != nil || proto != tt.proto || addr != tt.addr || base != tt.basePath {
			t.Errorf("%s: got %q %q %q %v, want %q %q %q", tt.host, proto, addr, base, err, tt.proto, tt.addr, tt.basePath)
		}
	}
}

func TestNewClientRejectsUnsupportedSchemes(t *testing.T) {
	t.Setenv("DOCKER_HOST", "")
	for _, host := range []string{"ssh://me@host", "npipe:////./pipe/docker_engine"} {
		if _, err := NewClient(host); err == nil || !strings.Contains(err.Error(), "not supported") {
			t.Errorf("%s: error %v, want not supported", host, err)
		}
	}
	t.Setenv("DOCKER_HOST", "ssh://me@host")
	if _, err := NewClient(""); err == nil {
		t.Error("DOCKER_HOST=ssh:// accepted")
	}
}

func TestNewerVersionAndNegotiate(t *testing.T) {
	newer := []struct {
		a, b string
		want bool
	}{
		{"1.51", "1.41", true}, {"1.41", "1.51", false}, {"1.41", "1.41", false},
		{"1.10", "1.9", true}, {"1.9", "1.10", false}, {"2.0", "1.51", true},
		{"1.41.1", "1.41", true}, {"1.41", "1.41.0", false}, {"", "1.24", false},
	}
	for _, tt := range newer {
		if got := newerVersion(tt.a, tt.b); got != tt.want {
			t.Errorf("newerVersion(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
	negotiated := map[string]string{
		"1.41": "1.41", // Docker 20.10, Podman 4.3
		"1.47": "1.47", // Docker 27
		"1.51": "1.51",
		"1.52": MaxAPIVersion, // a daemon newer than the client
		"1.9":  "1.9",
		"":     "1.24", // no header: older than negotiation
	}
	for daemon, want := range negotiated {
		if got := negotiate(daemon); got != want {
			t.Errorf("negotiate(%q) = %q, want %q", daemon, got, want)
		}
	}
}

func TestEncodeFiltersAsDockerDoes(t *testing.T) {
	tests := []struct {
		filters map[string][]string
		want    string
	}{
		{nil, ""},
		{map[string][]string{"type": {"container"}}, `{"type":{"container":true}}`},
		{map[string][]string{"type": {"container"}, "container": {"abc"}}, `{"container":{"abc":true},"type":{"container":true}}`},
		{map[string][]string{"event": {"die", "start"}}, `{"event":{"die":true,"start":true}}`},
	}
	for _, tt := range tests {
		if got := encodeFilters(tt.filters); got != tt.want {
			t.Errorf("%v: got %s, want %s", tt.filters, got, tt.want)
		}
	}
}

func TestEventOptionsQuery(t *testing.T) {
	since := time.Unix(1700000000, 5)
	until := time.Unix(1700000001, 123456789)
	q := eventQuery(eventOptions(since, until))
	if got := q.Get("since"); got != "1700000000.000000005" {
		t.Errorf("since %q", got)
	}
	if got := q.Get("until"); got != "1700000001.123456789" {
		t.Errorf("until %q", got)
	}
	if got := q.Get("filters"); got != `{"type":{"container":true}}` {
		t.Errorf("filters %q", got)
	}
	live := eventQuery(eventOptions(since, time.Time{}))
	if live.Has("until") {
		t.Errorf("a live stream asks for no until: %v", live)
	}
}

func TestResponseError(t *testing.T) {
	tests := []struct {
		status int
		body   string
		want   string
	}{
		{404, `{"message":"No such container: web"}`, "GET /containers/web/json: 404 Not Found: No such container: web"},
		{500, "{\"message\":\"  oops\\n\"}\n", "GET /containers/web/json: 500 Internal Server Error: oops"},
		{502, "bad gateway\n", "GET /containers/web/json: 502 Bad Gateway: bad gateway"},
		{400, ``, "GET /containers/web/json: 400 Bad Request: no message"},
		{409, `{"other":1}`, "GET /containers/web/json: 409 Conflict: no message"},
	}
	for _, tt := range tests {
		resp := &http.Response{StatusCode: tt.status, Body: io.NopCloser(strings.NewReader(tt.body))}
		err := responseError("GET /containers/web/json", resp)
		if err.Error() != tt.want {
			t.Errorf("%d %q: got %q, want %q", tt.status, tt.body, err, tt.want)
		}
		if IsNotFound(err) != (tt.status == 404) {
			t.Errorf("%d: IsNotFound %v", tt.status, IsNotFound(err))
		}
	}
	if IsNotFound(errors.New("No such container")) || IsNotFound(nil) {
		t.Error("only the daemon's 404 is not found")
	}
}

// fakeAPI is a daemon that answers every request with what answer says,
// recording the requests' paths and queries.
type fakeAPI struct {
	mu       sync.Mutex
	requests []string
	version  string // the API-Version header; "" sends none
	answer   func(w http.ResponseWriter, r *http.Request)
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	req := r.URL.Path
	if r.URL.RawQuery != "" {
		req += "?" + r.URL.RawQuery
	}
	f.requests = append(f.requests, req)
	version, answer := f.version, f.answer
	f.mu.Unlock()
	if version != "" {
		w.Header().Set("Api-Version", version)
	}
	if r.URL.Path == "/_ping" {
		_, _ = io.WriteString(w, "OK")
		return
	}
	answer(w, r)
}

func (f *fakeAPI) setAnswer(answer func(w http.ResponseWriter, r *http.Request)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer = answer
}

func (f *fakeAPI) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

// serveUnix serves h on a socket and returns its unix:// address.
func serveUnix(t *testing.T, h http.Handler) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "unix://" + sock
}

func clearDockerEnv(t *testing.T) {
	for _, k := range []string{"DOCKER_HOST", "DOCKER_API_VERSION", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY"} {
		t.Setenv(k, "")
	}
}

func TestClientCalls(t *testing.T) {
	clearDockerEnv(t)
	f := &fakeAPI{version: "1.41", answer: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/containers/json"):
			_, _ = io.WriteString(w, `[{"Id":"aaa","Names":["/a"]},{"Id":"bbb","Names":["/b"]}]`)
		case strings.HasSuffix(r.URL.Path, "/containers/aaa/json"):
			_, _ = io.WriteString(w, `{"Id":"aaa","Name":"/a","RestartCount":2,
				"State":{"Status":"exited","Running":false,"OOMKilled":true,"Pid":0,"ExitCode":137,
					"StartedAt":"2026-11-24T16:51:47.461Z","FinishedAt":"2026-11-24T16:52:00Z"},
				"Config":{"Image":"img:1","Labels":{"com.docker.compose.project":"p"}},
				"HostConfig":{"Memory":1048576}}`)
		case strings.HasSuffix(r.URL.Path, "/info"):
			_, _ = io.WriteString(w, `{"DockerRootDir":"/var/lib/docker","Containers":2}`)
		case strings.HasSuffix(r.URL.Path, "/version"):
			_, _ = io.WriteString(w, `{"Version":"20.10.24+dfsg1","ApiVersion":"1.41","Components":[{"Name":"Engine","Version":"20.10.24+dfsg1"}]}`)
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"message":"No such container: gone"}`)
		}
	}}
	c, err := NewClient(serveUnix(t, f))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	// The first call negotiates, as the docker client's lazy negotiation.
	info, err := c.ContainerInspect(ctx, "aaa")
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != "aaa" || info.Name != "/a" || info.RestartCount != 2 || info.State == nil || !info.State.OOMKilled ||
		info.State.ExitCode != 137 || info.State.FinishedAt != "2026-11-24T16:52:00Z" || info.Config == nil ||
		info.Config.Image != "img:1" || info.Config.Labels[labelComposeProject] != "p" {
		t.Errorf("inspect decoded %+v %+v %+v", info, info.State, info.Config)
	}
	list, err := c.ContainerList(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "aaa" || list[1].ID != "bbb" {
		t.Errorf("list %+v %v", list, err)
	}
	if i, err := c.Info(ctx); err != nil || i.DockerRootDir != "/var/lib/docker" {
		t.Errorf("info %+v %v", i, err)
	}
	if v, err := c.Version(ctx); err != nil || RuntimeOf(v) != (Runtime{RuntimeDocker, "20.10.24+dfsg1", "1.41"}) {
		t.Errorf("version %+v %v", v, err)
	}
	_, err = c.ContainerInspect(ctx, "gone")
	if !IsNotFound(err) || err.Error() != "GET /containers/gone/json: 404 Not Found: No such container: gone" {
		t.Errorf("inspect of a removed container: %v", err)
	}
	want := []string{"/_ping", "/v1.41/containers/aaa/json", "/v1.41/containers/json?all=1", "/v1.41/info", "/v1.41/version", "/v1.41/containers/gone/json"}
	if got := f.log(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("requests\n got %v\nwant %v", got, want)
	}
}

func TestPingNegotiatesEachTime(t *testing.T) {
	clearDockerEnv(t)
	f := &fakeAPI{answer: func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "{}") }}
	c, err := NewClient(serveUnix(t, f))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, step := range []struct{ daemon, want string }{
		{"1.41", "1.41"}, // Podman 4.3, Docker 20.10
		{"1.53", "1.51"}, // replaced by a newer dockerd: no newer than the client
		{"", "1.24"},     // no header
		{"1.47", "1.47"}, // a version is negotiated up again, not only down
	} {
		f.mu.Lock()
		f.version = step.daemon
		f.mu.Unlock()
		if err := c.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Info(ctx); err != nil {
			t.Fatal(err)
		}
		log := f.log()
		if got := log[len(log)-1]; got != "/v"+step.want+"/info" {
			t.Errorf("daemon %q: asked %s, want version %s", step.daemon, got, step.want)
		}
	}
}

func TestAPIVersionFromEnvIsNotNegotiated(t *testing.T) {
	clearDockerEnv(t)
	f := &fakeAPI{version: "1.41", answer: func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "{}") }}
	host := serveUnix(t, f)
	t.Setenv("DOCKER_API_VERSION", "v1.40")
	t.Setenv("DOCKER_HOST", host)
	c, err := NewClient("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Info(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Info(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(f.log(), " "); got != "/v1.40/info /_ping /v1.40/info" {
		t.Errorf("requests %s", got)
	}
}

func TestHostFlagOverridesEnv(t *testing.T) {
	clearDockerEnv(t)
	f := &fakeAPI{version: "1.41"}
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
	c, err := NewClient(serveUnix(t, f))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("the flag's address not used: %v", err)
	}
	c, err = NewClient("")
	if err != nil {
		t.Fatal(err)
	}
	err = c.Ping(context.Background())
	if err == nil || !strings.Contains(err.Error(), "GET /_ping: dial unix /nonexistent/docker.sock") {
		t.Errorf("DOCKER_HOST's address not used, or the error does not say so: %v", err)
	}
}

// TestTCPAndTLSFromEnv: tcp:// with DOCKER_CERT_PATH is https with the
// client's certificate; DOCKER_TLS_VERIFY verifies the daemon by ca.pem.
func TestTCPAndTLSFromEnv(t *testing.T) {
	clearDockerEnv(t)
	dir := t.TempDir()
	caCert, caKey := writeCert(t, dir, "ca", nil, nil)
	writeCert(t, dir, "cert", caCert, caKey)
	srvCert, srvKey := writeCert(t, t.TempDir(), "server", caCert, caKey)

	var gotClientCert bool
	var mu sync.Mutex
	srv := httptest.NewUnstartedServer(&fakeAPI{version: "1.41", answer: func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gotClientCert = r.TLS != nil && len(r.TLS.PeerCertificates) == 1 && r.TLS.PeerCertificates[0].Subject.CommonName == "cert"
		mu.Unlock()
		_, _ = io.WriteString(w, `{"DockerRootDir":"/d"}`)
	}})
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAnyClientCert, Certificates: []tls.Certificate{{
		Certificate: [][]byte{srvCert.Raw}, PrivateKey: srvKey}}}
	srv.StartTLS()
	defer srv.Close()
	host := "tcp://" + srv.Listener.Addr().String()

	t.Setenv("DOCKER_CERT_PATH", dir)
	for _, verify := range []string{"1", ""} {
		t.Setenv("DOCKER_TLS_VERIFY", verify)
		c, err := NewClient(host)
		if err != nil {
			t.Fatal(err)
		}
		if c.scheme != "https" || c.transport.TLSClientConfig.InsecureSkipVerify != (verify == "") {
			t.Errorf("verify=%q: scheme %s, insecure %v", verify, c.scheme, c.transport.TLSClientConfig.InsecureSkipVerify)
		}
		info, err := c.Info(context.Background())
		if err != nil || info.DockerRootDir != "/d" {
			t.Fatalf("verify=%q: %+v %v", verify, info, err)
		}
		mu.Lock()
		if !gotClientCert {
			t.Errorf("verify=%q: the client's certificate was not sent", verify)
		}
		gotClientCert = false
		mu.Unlock()
		c.Close()
	}

	// Verified against another CA, the daemon is refused.
	other := t.TempDir()
	otherCA, otherKey := writeCert(t, other, "ca", nil, nil)
	writeCert(t, other, "cert", otherCA, otherKey)
	t.Setenv("DOCKER_CERT_PATH", other)
	t.Setenv("DOCKER_TLS_VERIFY", "1")
	c, err := NewClient(host)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Info(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a daemon signed by another CA: %v", err)
	}

	// No certificate directory: plain http, whatever DOCKER_TLS_VERIFY says.
	t.Setenv("DOCKER_CERT_PATH", "")
	if c, err := NewClient(host); err != nil || c.scheme != "http" || c.transport.TLSClientConfig != nil {
		t.Errorf("no DOCKER_CERT_PATH: %v", err)
	}
	// A directory without the files is an error at once.
	t.Setenv("DOCKER_CERT_PATH", t.TempDir())
	if _, err := NewClient(host); err == nil || !strings.Contains(err.Error(), "DOCKER_CERT_PATH") {
		t.Errorf("empty DOCKER_CERT_PATH directory: %v", err)
	}
}

// writeCert writes name.pem (and, but for the CA, key.pem when name is
// cert) into dir, signed by parent or self-signed.
func writeCert(t *testing.T, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if name == "cert" {
		kb, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return cert, key
}
