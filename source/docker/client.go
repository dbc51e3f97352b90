package docker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	gopath "path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The Docker Engine API client: the few calls the source and the explain
// command make, over net/http and encoding/json. It is ours rather than
// github.com/docker/docker/client because that one links OpenTelemetry,
// distribution/reference (whose regexps compile at init), go-connections
// and the whole api/types tree: +1.65 MB of binary and +1.5 MB of idle
// RSS, for five GETs.

const (
	// DefaultHost is the daemon's address when neither --docker.host nor
	// DOCKER_HOST names one.
	DefaultHost = "unix:///var/run/docker.sock"
	// MaxAPIVersion is the newest API version asked for (the docker client
	// this one replaced, v28.4, sent 1.51); an older daemon's own version
	// is used instead.
	MaxAPIVersion = "1.51"
	// fallbackAPIVersion is a daemon's whose ping names no version: the
	// last before the header existed.
	fallbackAPIVersion = "1.24"
	// unixHost is the Host header on a socket, as the docker client sends.
	unixHost = "api.moby.localhost"
	// dialTimeout is the docker client's (go-connections').
	dialTimeout = 32 * time.Second
)

// Client talks to one daemon: dockerd, or Podman's compatible service.
// It is safe for concurrent use.
type Client struct {
	host      string // as given, for errors
	scheme    string // http or https
	addr      string // the URL's host: the TCP address, or unixHost
	basePath  string // a tcp:// address's path
	http      *http.Client
	transport *http.Transport

	// override is DOCKER_API_VERSION's: no negotiation then.
	override string

	mu         sync.Mutex
	version    string // negotiated; "" until a ping answered
	negotiated bool
}

// NewClient makes a client for host (empty: $DOCKER_HOST, or the local
// socket) with the environment's TLS settings and API version, as the
// docker client's FromEnv does:
//
//   - DOCKER_CERT_PATH: TLS with its cert.pem and key.pem as the client's
//     certificate, and its ca.pem (added to the system's) to verify the
//     daemon when DOCKER_TLS_VERIFY is set; without DOCKER_TLS_VERIFY the
//     daemon's certificate is not verified. Without DOCKER_CERT_PATH there
//     is no TLS, DOCKER_TLS_VERIFY or not.
//   - DOCKER_API_VERSION: the API version to use, not negotiated.
//
// The addresses are unix:///path and tcp://host:port[/path]; any other
// (ssh://, npipe://, fd://) is an error. It does not connect.
func NewClient(host string) (*Client, error) {
	if host == "" {
		host = os.Getenv("DOCKER_HOST")
	}
	if host == "" {
		host = DefaultHost
	}
	proto, addr, basePath, err := parseHost(host)
	if err != nil {
		return nil, err
	}
	tc, err := tlsFromEnv(os.Getenv("DOCKER_CERT_PATH"), os.Getenv("DOCKER_TLS_VERIFY") != "")
	if err != nil {
		return nil, fmt.Errorf("docker TLS from DOCKER_CERT_PATH: %w", err)
	}
	c := &Client{host: host, scheme: "http", addr: addr, basePath: basePath,
		override: strings.TrimPrefix(os.Getenv("DOCKER_API_VERSION"), "v")}
	if tc != nil {
		c.scheme = "https"
	}
	dialer := &net.Dialer{Timeout: dialTimeout}
	tr := &http.Transport{
		TLSClientConfig: tc,
		// As the docker client: idle connections are not kept for long
		// (moby/moby#45539).
		MaxIdleConns:    6,
		IdleConnTimeout: 30 * time.Second,
	}
	switch proto {
	case "unix":
		c.addr = unixHost
		tr.DisableCompression = true // no point on a local socket
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, "unix", addr)
		}
	case "tcp":
		tr.Proxy = http.ProxyFromEnvironment
		tr.DialContext = dialer.DialContext
	}
	c.transport = tr
	c.http = &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // a redirect is an answer, as the docker client takes it
	}}
	return c, nil
}

// Host is the daemon's address.
func (c *Client) Host() string { return c.host }

// Close drops the client's idle connections.
func (c *Client) Close() { c.transport.CloseIdleConnections() }

// parseHost splits a daemon address into its protocol, the address to
// dial and (tcp only) a base path.
func parseHost(host string) (proto, addr, basePath string, err error) {
	proto, rest, ok := strings.Cut(host, "://")
	if !ok || rest == "" {
		return "", "", "", fmt.Errorf("docker host %q: not an address (unix:///path or tcp://host:port)", host)
	}
	switch proto {
	case "unix":
		// sun_path is 108 bytes on Linux, with its terminating NUL.
		if len(rest) > 107 {
			return "", "", "", fmt.Errorf("docker host %q: socket path longer than 107 bytes", host)
		}
		return proto, rest, "", nil
	case "tcp":
		u, err := url.Parse("tcp://" + rest)
		if err != nil {
			return "", "", "", fmt.Errorf("docker host %q: %w", host, err)
		}
		if u.Port() == "" {
			return "", "", "", fmt.Errorf("docker host %q: no port (2375 is the plain one, 2376 TLS's)", host)
		}
		return proto, u.Host, strings.TrimRight(u.Path, "/"), nil
	default:
		return "", "", "", fmt.Errorf("docker host %q: %s:// is not supported (unix:///path or tcp://host:port)", host, proto)
	}
}

// tlsFromEnv is the docker client's WithTLSClientConfigFromEnv: nil
// without a certificate directory.
func tlsFromEnv(dir string, verify bool) (*tls.Config, error) {
	if dir == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: !verify} //nolint:gosec // FromEnv's semantics: DOCKER_TLS_VERIFY unset does not verify
	if verify {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		ca, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
		if err != nil {
			return nil, fmt.Errorf("certificate authority: %w", err)
		}
		if !pool.AppendCertsFromPEM(ca) {
			return nil, fmt.Errorf("certificate authority %s: no PEM certificate", filepath.Join(dir, "ca.pem"))
		}
		tc.RootCAs = pool
	}
	cert, err := os.ReadFile(filepath.Join(dir, "cert.pem"))
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	key, err := os.ReadFile(filepath.Join(dir, "key.pem"))
	if err != nil {
		return nil, fmt.Errorf("client certificate: %w", err)
	}
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		return nil, fmt.Errorf("client certificate in %s: %w", dir, err)
	}
	tc.Certificates = []tls.Certificate{pair}
	return tc, nil
}

// APIError is a daemon's answer other than success: the call, the status
// and the daemon's message ({"message": ...}, or the body as text).
type APIError struct {
	Call       string // "GET /containers/web/json"
	StatusCode int
	Message    string
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = "no message"
	}
	return fmt.Sprintf("%s: %d %s: %s", e.Call, e.StatusCode, http.StatusText(e.StatusCode), msg)
}

// IsNotFound reports whether err is the daemon's 404: no such container.
func IsNotFound(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.StatusCode == http.StatusNotFound
}

// maxErrorBody caps how much of an error's body is read.
const maxErrorBody = 64 << 10

// responseError reads a failed response's body into an APIError.
func responseError(call string, resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &APIError{Call: call, StatusCode: resp.StatusCode}
	var daemon struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &daemon) == nil && daemon.Message != "" {
		e.Message = strings.TrimSpace(daemon.Message)
	} else if !json.Valid(body) {
		e.Message = strings.TrimSpace(string(body))
	}
	return e
}

// newerVersion reports whether API version a is newer than b ("1.41" <
// "1.51", "1.9" < "1.10"); a part that is not a number counts as 0.
func newerVersion(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := range max(len(as), len(bs)) {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x > y
		}
	}
	return false
}

// negotiate is the version to use with a daemon whose ping named
// daemonVersion: the older of it and MaxAPIVersion; a daemon that names
// none is taken for one older than the header (1.24).
func negotiate(daemonVersion string) string {
	if daemonVersion == "" {
		daemonVersion = fallbackAPIVersion
	}
	if newerVersion(daemonVersion, MaxAPIVersion) {
		return MaxAPIVersion
	}
	return daemonVersion
}

// Ping asks the daemon whether it answers, and negotiates the API version
// from its answer's API-Version header (unless DOCKER_API_VERSION fixed
// it): each ping negotiates again, so a daemon replaced behind the same
// address is spoken to in its own version.
func (c *Client) Ping(ctx context.Context) error {
	resp, err := c.do(ctx, "/_ping", nil, false)
	if err != nil {
		return err
	}
	defer drainClose(resp.Body)
	v := negotiate(resp.Header.Get("Api-Version"))
	c.mu.Lock()
	c.version, c.negotiated = v, true
	c.mu.Unlock()
	return nil
}

// APIVersion is the version the calls use: DOCKER_API_VERSION's, the
// negotiated one, or MaxAPIVersion before any ping answered.
func (c *Client) APIVersion() string {
	if c.override != "" {
		return c.override
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.version == "" {
		return MaxAPIVersion
	}
	return c.version
}

// apiVersion is the version of a call; the first call on a client no ping
// negotiated for pings first, as the docker client's lazy negotiation
// does. A ping that fails leaves MaxAPIVersion: the call itself then says
// what is wrong.
func (c *Client) apiVersion(ctx context.Context) string {
	if c.override != "" {
		return c.override
	}
	c.mu.Lock()
	negotiated := c.negotiated
	c.mu.Unlock()
	if !negotiated {
		_ = c.Ping(ctx)
	}
	return c.APIVersion()
}

// do sends GET path?query, under the API version's prefix when versioned.
// A connection's failure names the call; an answer other than 2xx is an
// *APIError.
func (c *Client) do(ctx context.Context, path string, query url.Values, versioned bool) (*http.Response, error) {
	call := "GET " + path
	p := gopath.Join(c.basePath, path)
	if versioned {
		p = gopath.Join(c.basePath, "/v"+c.apiVersion(ctx), path)
	}
	u := url.URL{Scheme: c.scheme, Host: c.addr, Path: p, RawQuery: query.Encode()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", call, err)
	}
	req.Header.Set("User-Agent", "exit137-exporter")
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its "Get "http://api.moby.localhost/...":" says less than call
		}
		return nil, fmt.Errorf("%s: %w", call, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer drainClose(resp.Body)
		return nil, responseError(call, resp)
	}
	return resp, nil
}

// get decodes the JSON answer to GET path into into.
func (c *Client) get(ctx context.Context, path string, query url.Values, into any) error {
	resp, err := c.do(ctx, path, query, true)
	if err != nil {
		return err
	}
	defer drainClose(resp.Body)
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		return fmt.Errorf("GET %s: the answer: %w", path, err)
	}
	return nil
}

// drainClose reads a little of what is left, so that the connection can
// be reused, and closes the body.
func drainClose(body io.ReadCloser) {
	_, _ = io.CopyN(io.Discard, body, 4096)
	_ = body.Close()
}

// Version is the daemon's version answer (GET /version), the fields read.
type Version struct {
	Platform struct {
		Name string
	}
	Components []Component
	// Version is the engine's: dockerd's, or Podman's.
	Version    string
	APIVersion string `json:"ApiVersion"`
}

// Component is one part of the engine the version answer lists.
type Component struct {
	Name    string
	Version string
}

// Version asks the daemon what it is.
func (c *Client) Version(ctx context.Context) (Version, error) {
	var v Version
	err := c.get(ctx, "/version", nil, &v)
	return v, err
}

// Info is the daemon's GET /info answer, the fields read.
type Info struct {
	// DockerRootDir is the daemon's data root (/var/lib/docker).
	DockerRootDir string
}

// Info asks the daemon about itself.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var info Info
	err := c.get(ctx, "/info", nil, &info)
	return info, err
}

// ContainerSummary is one container of the list.
type ContainerSummary struct {
	ID string `json:"Id"`
}

// ContainerList lists every container, running or not (all=1).
func (c *Client) ContainerList(ctx context.Context) ([]ContainerSummary, error) {
	var list []ContainerSummary
	err := c.get(ctx, "/containers/json", url.Values{"all": {"1"}}, &list)
	return list, err
}

// Container is a container's inspect (GET /containers/{id}/json), the
// fields read.
type Container struct {
	ID           string `json:"Id"`
	Name         string // "/web"
	RestartCount int
	State        *ContainerState
	Config       *ContainerConfig
}

// ContainerState is its latest run's state. Times are RFC 3339; a run
// that never started or finished says 0001-01-01T00:00:00Z.
type ContainerState struct {
	Status     string
	Running    bool
	OOMKilled  bool
	Pid        int
	ExitCode   int
	StartedAt  string
	FinishedAt string
}

// ContainerConfig is its configuration, the fields read.
type ContainerConfig struct {
	Image  string
	Labels map[string]string
}

// ContainerInspect inspects one container by id or name; a container the
// daemon does not know is an error IsNotFound tells.
func (c *Client) ContainerInspect(ctx context.Context, id string) (Container, error) {
	var info Container
	if id == "" {
		return info, &APIError{Call: "GET /containers//json", StatusCode: http.StatusNotFound, Message: "no container named"}
	}
	err := c.get(ctx, "/containers/"+id+"/json", nil, &info)
	return info, err
}
