package containerd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
)

func TestFrames(t *testing.T) {
	var stream []byte
	msgs := [][]byte{[]byte("one"), nil, bytes.Repeat([]byte{7}, 70000)}
	for _, m := range msgs {
		stream = appendFrame(stream, m)
	}
	if want := []byte{0, 0, 0, 0, 3, 'o', 'n', 'e'}; !bytes.Equal(stream[:8], want) {
		t.Fatalf("% x, want % x", stream[:8], want)
	}
	r := bytes.NewReader(stream)
	for i, want := range msgs {
		got, err := readFrame(r, maxMessage)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("message %d: %d bytes, %v", i, len(got), err)
		}
	}
	if _, err := readFrame(r, maxMessage); err != io.EOF {
		t.Fatalf("after the last: %v, want io.EOF", err)
	}

	cases := []struct {
		name string
		b    []byte
		code code
	}{
		{"a header cut short", []byte{0, 0, 0}, codeInternal},
		{"a message cut short", []byte{0, 0, 0, 0, 5, 'a', 'b'}, codeInternal},
		{"a message with no bytes of its 5", []byte{0, 0, 0, 0, 5}, codeInternal},
		{"compressed", []byte{1, 0, 0, 0, 1, 'a'}, codeInternal},
		{"too large", []byte{0, 0xff, 0xff, 0xff, 0xff}, codeResourceExhausted},
	}
	for _, c := range cases {
		_, err := readFrame(bytes.NewReader(c.b), maxMessage)
		if codeOf(err) != c.code {
			t.Errorf("%s: %v, want code %v", c.name, err, c.code)
		}
	}
	failing := errors.New("connection reset")
	if _, err := readFrame(io.MultiReader(bytes.NewReader([]byte{0, 0}), errReader{failing}), maxMessage); !errors.Is(err, failing) {
		t.Errorf("a failed read: %v, want the reader's error", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestStatus(t *testing.T) {
	cases := []struct {
		name        string
		httpStatus  int
		header      http.Header
		code        code
		msg         string
		messagesNow bool // no status yet: messages follow
	}{
		{"messages follow", 200, http.Header{"Content-Type": {"application/grpc"}}, codeOK, "", true},
		{"a content subtype", 200, http.Header{"Content-Type": {"application/grpc+proto"}}, codeOK, "", true},
		{"trailers-only, not found", 200, http.Header{"Content-Type": {"application/grpc"}, "Grpc-Status": {"5"},
			"Grpc-Message": {"container \"x\" in namespace \"k8s.io\": not found"}}, codeNotFound,
			"container \"x\" in namespace \"k8s.io\": not found", false},
		{"trailers-only, percent-encoded", 200, http.Header{"Grpc-Status": {"12"}, "Grpc-Message": {"unknown service%3A %E2%82%AC 100%"}},
			codeUnimplemented, "unknown service: € 100%", false},
		{"trailers-only, OK", 200, http.Header{"Grpc-Status": {"0"}}, codeOK, "", false},
		{"a malformed status", 200, http.Header{"Grpc-Status": {"five"}}, codeInternal, `malformed grpc-status "five"`, false},
		{"an HTTP error", 503, http.Header{"Content-Type": {"text/plain"}}, codeUnavailable, "unexpected HTTP status 503 from the server", false},
		{"HTTP not found", 404, http.Header{}, codeUnimplemented, "unexpected HTTP status 404 from the server", false},
		{"not gRPC", 200, http.Header{"Content-Type": {"application/json"}}, codeInternal, `unexpected content-type "application/json" from the server`, false},
	}
	for _, c := range cases {
		err := responseError(c.httpStatus, c.header)
		switch {
		case c.messagesNow:
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
		case c.code == codeOK:
			if err != io.EOF {
				t.Errorf("%s: %v, want io.EOF", c.name, err)
			}
		default:
			var e *rpcError
			if !errors.As(err, &e) || e.code != c.code || e.msg != c.msg {
				t.Errorf("%s: %v, want code %v desc %q", c.name, err, c.code, c.msg)
			}
		}
	}
	if st, ok := headerStatus(http.Header{}); ok || st != nil {
		t.Errorf("no grpc-status: %v %v", st, ok)
	}
}

func TestCodes(t *testing.T) {
	notFound := &rpcError{code: codeNotFound, msg: "gone"}
	for err, want := range map[error]code{
		nil:                                 codeOK,
		notFound:                            codeNotFound,
		fmt.Errorf("get: %w", notFound):     codeNotFound,
		errors.New("not a call's"):          codeUnknown,
		context.Canceled:                    codeUnknown,
		&rpcError{code: 17, msg: "a later"}: 17,
	} {
		if got := codeOf(err); got != want {
			t.Errorf("%v: %v, want %v", err, got, want)
		}
	}
	if got := notFound.Error(); got != "rpc error: code = NotFound desc = gone" {
		t.Errorf("%q", got)
	}
	if got := code(17).String(); got != "Code(17)" {
		t.Errorf("%q", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := transportError(ctx, errors.New("x")); err.code != codeCanceled || !errors.Is(err, context.Canceled) {
		t.Errorf("a canceled call: %v", err)
	}
	if err := transportError(context.Background(), io.ErrUnexpectedEOF); err.code != codeUnavailable || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a failed connection: %v", err)
	}
}

func TestSocketPath(t *testing.T) {
	for target, want := range map[string]string{
		"/run/containerd/containerd.sock":        "/run/containerd/containerd.sock",
		"unix:///run/containerd/containerd.sock": "/run/containerd/containerd.sock",
		"unix:relative.sock":                     "relative.sock",
		"relative.sock":                          "relative.sock",
	} {
		if got, err := socketPath(target); err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", target, got, err, want)
		}
	}
	for _, target := range []string{"tcp://127.0.0.1:1234", "dns:///containerd:1234"} {
		if _, err := socketPath(target); err == nil {
			t.Errorf("%q: no error", target)
		}
	}
}
