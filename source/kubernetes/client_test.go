package kubernetes

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// clientCert makes a self-signed client certificate for cn, in PEM.
func clientCert(t *testing.T, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, IsCA: true,
		BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// A server that wants a client certificate, trusted through the CA data:
// the list is read, and the server saw who asked.
func TestClientCertificate(t *testing.T) {
	certPEM, keyPEM := clientCert(t, "exit137")
	var who string
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who = r.TLS.PeerCertificates[0].Subject.CommonName
		w.Write([]byte(`{"metadata":{"resourceVersion":"7"},"items":[]}`))
	}))
	srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: x509.NewCertPool()}
	srv.TLS.ClientCAs.AppendCertsFromPEM(certPEM)
	srv.StartTLS()
	defer srv.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	c, err := newClient(restConfig{server: srv.URL, caData: ca, certData: certPEM, keyData: keyPEM})
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	var pods podList
	if err := c.list(context.Background(), "pods", nil, &pods); err != nil {
		t.Fatal(err)
	}
	if who != "exit137" || pods.Metadata.ResourceVersion != "7" {
		t.Errorf("server saw %q, list version %q", who, pods.Metadata.ResourceVersion)
	}

	// Without the CA, the server is not trusted.
	c, err = newClient(restConfig{server: srv.URL, certData: certPEM, keyData: keyPEM})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.list(context.Background(), "pods", nil, &pods); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted server: %v", err)
	}
}

// A token file is sent, and read again after tokenReread (rotated); one
// that can no longer be read keeps the token read before.
func TestTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("first\n")
	var sent string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent = r.Header.Get("Authorization")
		w.Write([]byte(`{}`))
	}))
	defer srv.Close()
	c, err := newClient(restConfig{server: srv.URL, token: "ignored", tokenFile: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.list(context.Background(), "pods", nil, &podList{}); err != nil || sent != "Bearer first" {
		t.Fatalf("sent %q (%v), want the file's token", sent, err)
	}

	b := c.auth
	now := b.readAt
	write("second")
	for _, step := range []struct {
		after time.Duration
		want  string
	}{{30 * time.Second, "first"}, {tokenReread, "second"}} {
		if got := b.get(now.Add(step.after)); got != step.want {
			t.Errorf("after %v: token %q, want %q", step.after, got, step.want)
		}
	}
	os.Remove(path)
	if got := b.get(now.Add(3 * tokenReread)); got != "second" {
		t.Errorf("file gone: token %q, want the one read before", got)
	}
	if _, err := newClient(restConfig{server: srv.URL, tokenFile: path}); err == nil {
		t.Error("a token file that cannot be read: no error")
	}
}

func TestResponseError(t *testing.T) {
	tests := []struct {
		name, body string
		code       int
		want       string
		expired    bool
	}{
		{name: "the API's Status", code: http.StatusForbidden,
			body: `{"kind":"Status","status":"Failure","reason":"Forbidden","code":403,"message":"pods is forbidden: no"}`,
			want: "pods is forbidden: no"},
		{name: "too old", code: http.StatusGone, body: `{"kind":"Status","reason":"Expired","code":410,"message":"too old resource version"}`,
			want: "too old resource version", expired: true},
		{name: "not a Status", code: http.StatusBadGateway, body: "upstream down\n", want: "/api/v1/pods 502 Bad Gateway: upstream down"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.code)
				w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			c, err := newClient(restConfig{server: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.get(context.Background(), "pods", url.Values{})
			if err == nil || err.Error() != tt.want {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
			if s, ok := err.(*apiStatus); ok != (tt.code != http.StatusBadGateway) || (ok && s.expired() != tt.expired) {
				t.Errorf("error %#v: a Status %v, expired %v", err, ok, tt.expired)
			}
		})
	}
}
