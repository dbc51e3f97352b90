package kubernetes

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// tokenReread is how often a token file is read again, as client-go does:
// a bound service account token is rotated long before it expires.
const tokenReread = time.Minute

// apiClient gets core/v1 resources from the API server as JSON.
type apiClient struct {
	server    *url.URL
	http      *http.Client
	transport *http.Transport
	auth      *bearer
}

// newClient makes a client from cfg, reading its files now.
func newClient(cfg restConfig) (*apiClient, error) {
	server, err := url.Parse(cfg.server)
	if err != nil {
		return nil, fmt.Errorf("server %q: %w", cfg.server, err)
	}
	if server.Scheme != "https" && server.Scheme != "http" {
		return nil, fmt.Errorf("server %q: not an http(s) URL", cfg.server)
	}
	tc, err := tlsConfig(cfg)
	if err != nil {
		return nil, err
	}
	auth := &bearer{token: cfg.token, file: cfg.tokenFile}
	if cfg.tokenFile != "" {
		if err := auth.load(time.Now()); err != nil {
			return nil, err
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	// A watch on a dead HTTP/2 connection would wait for nothing: pinged
	// after 30 s of silence, as client-go does.
	tr.HTTP2 = &http.HTTP2Config{SendPingTimeout: 30 * time.Second, PingTimeout: 15 * time.Second}
	return &apiClient{server: server, http: &http.Client{Transport: tr}, transport: tr, auth: auth}, nil
}

// close drops the client's idle connections.
func (c *apiClient) close() { c.transport.CloseIdleConnections() }

func tlsConfig(cfg restConfig) (*tls.Config, error) {
	tc := &tls.Config{InsecureSkipVerify: cfg.insecure, ServerName: cfg.tlsServerName}
	ca, err := dataOrFile(cfg.caData, cfg.caFile)
	if err != nil {
		return nil, err
	}
	if len(ca) > 0 {
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(ca) {
			return nil, errors.New("certificate authority: no PEM certificate")
		}
	}
	cert, err := dataOrFile(cfg.certData, cfg.certFile)
	if err != nil {
		return nil, err
	}
	key, err := dataOrFile(cfg.keyData, cfg.keyFile)
	if err != nil {
		return nil, err
	}
	if len(cert) > 0 || len(key) > 0 {
		pair, err := tls.X509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

func dataOrFile(data []byte, file string) ([]byte, error) {
	if len(data) > 0 || file == "" {
		return data, nil
	}
	return os.ReadFile(file)
}

// bearer is the client's token: a fixed one, or a file's, read again
// every tokenReread.
type bearer struct {
	file string

	mu     sync.Mutex
	token  string
	readAt time.Time
}

// load reads the token file; b.mu is held or b not shared yet.
func (b *bearer) load(now time.Time) error {
	data, err := os.ReadFile(b.file)
	if err != nil {
		return err
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return fmt.Errorf("token file %s is empty", b.file)
	}
	b.token, b.readAt = token, now
	return nil
}

// get is the token to send.
func (b *bearer) get(now time.Time) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.file != "" && now.Sub(b.readAt) >= tokenReread {
		_ = b.load(now) // a file that cannot be read again keeps the token read before
	}
	return b.token
}

// get sends GET /api/v1/<resource>?query; a response other than 200 is an
// error, the API's Status when it sent one.
func (c *apiClient) get(ctx context.Context, resource string, query url.Values) (*http.Response, error) {
	u := c.server.JoinPath("api", "v1", resource)
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "exit137-exporter")
	if token := c.auth.get(time.Now()); token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, responseError(resp)
	}
	return resp, nil
}

// list decodes one list response into into.
func (c *apiClient) list(ctx context.Context, resource string, query url.Values, into any) error {
	resp, err := c.get(ctx, resource, query)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(into)
}

// watch opens a watch; its events come until the server ends it or stop.
func (c *apiClient) watch(ctx context.Context, resource string, query url.Values) (*watch, error) {
	ctx, cancel := context.WithCancel(ctx)
	resp, err := c.get(ctx, resource, query)
	if err != nil {
		cancel()
		return nil, err
	}
	events := make(chan watchEvent)
	go func() {
		defer close(events)
		defer cancel() // a watch the server ended holds no context
		defer resp.Body.Close()
		readWatch(resp.Body, events, ctx.Done())
	}()
	return &watch{events: events, stop: cancel}, nil
}

// apiStatus is the API's account of a failure: a response's body, or a
// watch's ERROR event.
type apiStatus struct {
	Message string `json:"message"`
	Reason  string `json:"reason"`
	Code    int    `json:"code"`
}

func (s *apiStatus) Error() string {
	if s.Message != "" {
		return s.Message
	}
	return fmt.Sprintf("%s (%d)", s.Reason, s.Code)
}

// expired: the resource version asked for is too old to watch from.
func (s *apiStatus) expired() bool {
	return s.Reason == "Expired" || s.Reason == "Gone" || s.Code == http.StatusGone
}

// responseError is the error a failed response tells.
func responseError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var s apiStatus
	if json.Unmarshal(body, &s) == nil && s.Message != "" {
		return &s
	}
	return fmt.Errorf("%s %s: %s", resp.Request.URL.Path, resp.Status, strings.TrimSpace(string(body)))
}
