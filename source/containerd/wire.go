package containerd

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync"
)

// gRPC, as much of it as the source uses: unary and server-streaming
// calls over HTTP/2 cleartext on containerd's unix socket, each message
// framed by a flag byte (uncompressed) and a 4-byte big-endian length,
// the call's status in the response's trailers. The generated clients
// linked grpc-go and the protobuf runtime, about 5 MB of the binary and
// 3 MB of resident memory on every host, containerd or not.

// maxMessage bounds a received message, as grpc-go's default does.
const maxMessage = 4 << 20

// code is a gRPC status code.
type code uint32

// The codes the source tells apart, and the ones it makes of a failed
// call.
const (
	codeOK                code = 0
	codeCanceled          code = 1
	codeUnknown           code = 2
	codeDeadlineExceeded  code = 4
	codeNotFound          code = 5
	codePermissionDenied  code = 7
	codeResourceExhausted code = 8
	codeUnimplemented     code = 12
	codeInternal          code = 13
	codeUnavailable       code = 14
	codeUnauthenticated   code = 16
)

var codeNames = [...]string{"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
	"AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
	"Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated"}

func (c code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return "Code(" + strconv.FormatUint(uint64(c), 10) + ")"
}

// rpcError is a call's failure: the status the server sent, or the one
// made of a failure to reach it (err).
type rpcError struct {
	code code
	msg  string
	err  error
}

func (e *rpcError) Error() string { return "rpc error: code = " + e.code.String() + " desc = " + e.msg }
func (e *rpcError) Unwrap() error { return e.err }

func rpcErrorf(c code, format string, args ...any) *rpcError {
	return &rpcError{code: c, msg: fmt.Sprintf(format, args...)}
}

// codeOf is the status code of a call's error: OK for none, Unknown for
// an error that is no call's.
func codeOf(err error) code {
	if err == nil {
		return codeOK
	}
	var e *rpcError
	if errors.As(err, &e) {
		return e.code
	}
	return codeUnknown
}

// transportError is the status of a call that failed short of a status:
// its context ended, or the connection failed.
func transportError(ctx context.Context, err error) *rpcError {
	switch ctxErr := ctx.Err(); {
	case errors.Is(ctxErr, context.DeadlineExceeded):
		return &rpcError{code: codeDeadlineExceeded, msg: ctxErr.Error(), err: ctxErr}
	case ctxErr != nil:
		return &rpcError{code: codeCanceled, msg: ctxErr.Error(), err: ctxErr}
	}
	return &rpcError{code: codeUnavailable, msg: err.Error(), err: err}
}

// metadataKey holds a context's outgoing metadata: header name, value
// pairs sent with each call made with the context.
type metadataKey struct{}

// withMetadata returns ctx sending the header name: value with its calls,
// besides what it sent already.
func withMetadata(ctx context.Context, name, value string) context.Context {
	md, _ := ctx.Value(metadataKey{}).([]string)
	return context.WithValue(ctx, metadataKey{}, append(md[:len(md):len(md)], name, value))
}

// rpcConn makes calls on one HTTP/2 connection to a unix socket.
type rpcConn struct {
	path      string
	http      *http.Client
	transport *http.Transport

	mu     sync.Mutex
	conns  []net.Conn
	closed bool
}

// socketPath is the path of a unix socket address: a path, unix://path
// or unix:path.
func socketPath(target string) (string, error) {
	if path, ok := strings.CutPrefix(target, "unix://"); ok {
		return path, nil
	}
	if path, ok := strings.CutPrefix(target, "unix:"); ok {
		return path, nil
	}
	if strings.Contains(target, "://") {
		return "", fmt.Errorf("%q is not a unix socket", target)
	}
	return target, nil
}

// newRPCConn makes a client of the socket at target; it connects at the
// first call.
func newRPCConn(target string) (*rpcConn, error) {
	path, err := socketPath(target)
	if err != nil {
		return nil, err
	}
	c := &rpcConn{path: path}
	c.transport = &http.Transport{DialContext: c.dial, DisableCompression: true}
	// HTTP/2 with prior knowledge: no TLS, no upgrade, as gRPC speaks it.
	c.transport.Protocols = new(http.Protocols)
	c.transport.Protocols.SetUnencryptedHTTP2(true)
	c.http = &http.Client{Transport: c.transport}
	return c, nil
}

func (c *rpcConn) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.path)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		conn.Close()
		return nil, net.ErrClosed
	}
	c.conns = append(c.conns, conn)
	return conn, nil
}

// close ends every call and closes the connection.
func (c *rpcConn) close() {
	c.mu.Lock()
	conns := c.conns
	c.conns, c.closed = nil, true
	c.mu.Unlock()
	c.transport.CloseIdleConnections()
	for _, conn := range conns {
		conn.Close()
	}
}

// rpcStream is one call's response: the messages the server sends, then
// its status.
type rpcStream struct {
	ctx context.Context
	// ready is closed when the response's headers came or the request
	// failed; resp and err are set then.
	ready chan struct{}
	resp  *http.Response
	err   error
	// started is set once the headers are checked; end is the call's
	// outcome once it is over (io.EOF for OK).
	started bool
	end     error
}

// open starts a call of method (/package.Service/Method) with the message
// req, and returns once the request is sent: a server stream's response
// headers may come only with its first message.
func (c *rpcConn) open(ctx context.Context, method string, req []byte) (*rpcStream, error) {
	body := appendFrame(make([]byte, 0, frameHeader+len(req)), req)
	wrote := make(chan error, 1)
	trace := &httptrace.ClientTrace{WroteRequest: func(info httptrace.WroteRequestInfo) {
		select {
		case wrote <- info.Err:
		default:
		}
	}}
	hreq, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodPost,
		"http://localhost"+method, bytes.NewReader(body))
	if err != nil {
		return nil, rpcErrorf(codeInternal, "request for %s: %v", method, err)
	}
	hreq.Header = http.Header{"Content-Type": {"application/grpc"}, "Te": {"trailers"}, "User-Agent": {"exit137-exporter"}}
	md, _ := ctx.Value(metadataKey{}).([]string)
	for i := 0; i+1 < len(md); i += 2 {
		hreq.Header.Add(md[i], md[i+1])
	}
	s := &rpcStream{ctx: ctx, ready: make(chan struct{})}
	go func() {
		s.resp, s.err = c.http.Do(hreq)
		if s.err != nil {
			s.err = transportError(ctx, s.err)
		}
		close(s.ready)
	}()
	select {
	case err := <-wrote:
		if err == nil {
			return s, nil
		}
	case <-s.ready:
	}
	<-s.ready
	if s.err != nil {
		return nil, s.err
	}
	return s, nil
}

// recv returns the next message; io.EOF when the call ended with status
// OK, its status's error when it did not.
func (s *rpcStream) recv() ([]byte, error) {
	if s.end != nil {
		return nil, s.end
	}
	msg, err := s.next()
	if err != nil {
		s.end = err
		if s.resp != nil {
			s.resp.Body.Close()
		}
	}
	return msg, err
}

func (s *rpcStream) next() ([]byte, error) {
	if !s.started {
		<-s.ready
		if s.err != nil {
			return nil, s.err
		}
		s.started = true
		if err := responseError(s.resp.StatusCode, s.resp.Header); err != nil {
			return nil, err
		}
	}
	msg, err := readFrame(s.resp.Body, maxMessage)
	switch {
	case err == nil:
		return msg, nil
	case errors.Is(err, io.EOF):
		st, ok := headerStatus(s.resp.Trailer)
		if !ok {
			return nil, rpcErrorf(codeInternal, "the server ended the stream with no status")
		}
		if st.code == codeOK {
			return nil, io.EOF
		}
		return nil, st
	case errors.As(err, new(*rpcError)):
		return nil, err
	}
	return nil, transportError(s.ctx, err)
}

// close ends the call; the next recv returns io.EOF.
func (s *rpcStream) close() {
	if s.end == nil {
		s.end = io.EOF
		<-s.ready
		if s.resp != nil {
			s.resp.Body.Close()
		}
	}
}

// call makes a unary call: one message each way.
func (c *rpcConn) call(ctx context.Context, method string, req []byte) ([]byte, error) {
	s, err := c.open(ctx, method, req)
	if err != nil {
		return nil, err
	}
	defer s.close()
	resp, err := s.recv()
	if errors.Is(err, io.EOF) {
		return nil, rpcErrorf(codeInternal, "%s: no response message", method)
	}
	if err != nil {
		return nil, err
	}
	switch _, err := s.recv(); {
	case err == nil:
		return nil, rpcErrorf(codeInternal, "%s: more than one response message", method)
	case !errors.Is(err, io.EOF):
		return nil, err
	}
	return resp, nil
}

// responseError checks a response's headers: a call the server refused
// at once (its status in the headers: trailers-only), or a response that
// is no gRPC's. nil means messages follow.
func responseError(httpStatus int, h http.Header) error {
	if st, ok := headerStatus(h); ok {
		if st.code == codeOK {
			return io.EOF
		}
		return st
	}
	if httpStatus != http.StatusOK {
		return rpcErrorf(httpStatusCode(httpStatus), "unexpected HTTP status %d from the server", httpStatus)
	}
	if ct := h.Get("Content-Type"); ct != "application/grpc" && !strings.HasPrefix(ct, "application/grpc+") &&
		!strings.HasPrefix(ct, "application/grpc;") {
		return rpcErrorf(codeInternal, "unexpected content-type %q from the server", ct)
	}
	return nil
}

// httpStatusCode is the gRPC code of an HTTP status that carried no gRPC
// status, as gRPC maps it.
func httpStatusCode(status int) code {
	switch status {
	case http.StatusBadRequest:
		return codeInternal
	case http.StatusUnauthorized:
		return codeUnauthenticated
	case http.StatusForbidden:
		return codePermissionDenied
	case http.StatusNotFound:
		return codeUnimplemented
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return codeUnavailable
	}
	return codeUnknown
}

// headerStatus reads grpc-status and grpc-message; ok is false when
// there is no grpc-status. A malformed status is an Internal error.
func headerStatus(h http.Header) (st *rpcError, ok bool) {
	v := h.Get("Grpc-Status")
	if v == "" {
		return nil, false
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return rpcErrorf(codeInternal, "malformed grpc-status %q", v), true
	}
	return &rpcError{code: code(n), msg: percentDecode(h.Get("Grpc-Message"))}, true
}

// percentDecode undoes grpc-message's percent-encoding; a malformed
// escape is kept as it is.
func percentDecode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(n))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// frameHeader is the length of a message's prefix: a compressed flag and
// the message's length.
const frameHeader = 5

// appendFrame appends msg framed, uncompressed.
func appendFrame(dst, msg []byte) []byte {
	dst = append(dst, 0)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(msg)))
	return append(dst, msg...)
}

// readFrame reads one framed message of at most limit bytes: io.EOF when
// r ends before it, an rpcError when it is cut short, compressed or too
// large, and r's error when reading fails.
func readFrame(r io.Reader, limit int) ([]byte, error) {
	var hdr [frameHeader]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, rpcErrorf(codeInternal, "a message's header cut short")
		}
		return nil, err
	}
	if hdr[0] != 0 {
		return nil, rpcErrorf(codeInternal, "a compressed message (flag %d), though none was asked for", hdr[0])
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if uint64(n) > uint64(limit) {
		return nil, rpcErrorf(codeResourceExhausted, "a message of %d bytes, more than %d", n, limit)
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(r, msg); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, rpcErrorf(codeInternal, "a message of %d bytes cut short", n)
		}
		return nil, err
	}
	return msg, nil
}
