package testrig

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// DockerSocket is the real daemon's socket.
func DockerSocket() string {
	if h := os.Getenv("DOCKER_HOST"); strings.HasPrefix(h, "unix://") {
		return strings.TrimPrefix(h, "unix://")
	}
	return "/var/run/docker.sock"
}

// SocketProxy forwards a unix socket of its own to the Docker daemon. Down
// cuts every connection and refuses new ones, which is what the exporter
// sees when the daemon goes away, without touching the daemon; Up heals
// it, and the two can alternate any number of times. SetLag delays what
// the daemon sends (event streams and answers alike), as a loaded host or
// a slow consumer would, on event streams only.
type SocketProxy struct {
	Path string

	mu    sync.Mutex
	l     net.Listener
	gen   int // bumped by every Down; a connection of an older gen is cut
	conns map[net.Conn]bool
	lag   time.Duration
	cuts  int
}

// NewSocketProxy returns a proxy that is down until Up.
func NewSocketProxy(t testing.TB) *SocketProxy {
	p := &SocketProxy{Path: filepath.Join(t.TempDir(), "docker.sock"), conns: map[net.Conn]bool{}}
	t.Cleanup(p.Down)
	return p
}

// Host is the --docker.host value for the proxy.
func (p *SocketProxy) Host() string { return "unix://" + p.Path }

// Up starts accepting; it does nothing when the proxy is up.
func (p *SocketProxy) Up(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l != nil {
		return
	}
	_ = os.Remove(p.Path)
	l, err := net.Listen("unix", p.Path)
	if err != nil {
		t.Fatal(err)
	}
	p.l = l
	gen := p.gen
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.forward(c, gen)
		}
	}()
}

// IsUp reports whether the proxy accepts connections.
func (p *SocketProxy) IsUp() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.l != nil
}

// Cuts is how many times Down cut a live proxy.
func (p *SocketProxy) Cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

// SetLag delays every byte the daemon sends on an event stream (a
// connection that asked for /events) by d from now on, 0 ending it; bytes
// keep their order. Other answers (inspect, list) are not delayed, so a
// consumer that inspects on each event sees the daemon ahead of its
// events, as it does when event handling lags behind.
func (p *SocketProxy) SetLag(d time.Duration) {
	p.mu.Lock()
	p.lag = d
	p.mu.Unlock()
}

func (p *SocketProxy) currentLag() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lag
}

func (p *SocketProxy) forward(c net.Conn, gen int) {
	up, err := net.Dial("unix", DockerSocket())
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.gen != gen { // cut while this connection was being set up
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	var events atomic.Bool
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, sniffer{c, &events}); done <- struct{}{} }()
	go func() { p.copyLagged(c, up, &events); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// chunk is what the daemon sent, and when it may be passed on.
type chunk struct {
	b   []byte
	due time.Time
}

// sniffer marks its connection as an event stream once the client asks
// for /events on it.
type sniffer struct {
	r      io.Reader
	events *atomic.Bool
}

func (s sniffer) Read(b []byte) (int, error) {
	n, err := s.r.Read(b)
	if n > 0 && bytes.Contains(b[:n], []byte("/events")) {
		s.events.Store(true)
	}
	return n, err
}

// copyLagged copies src to dst, holding each read of an event stream back
// by the lag in force when it was read.
func (p *SocketProxy) copyLagged(dst io.Writer, src io.Reader, events *atomic.Bool) {
	q := make(chan chunk, 256)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				due := time.Now()
				if events.Load() {
					due = due.Add(p.currentLag())
				}
				q <- chunk{b: buf[:n], due: due}
			}
			if err != nil {
				return
			}
		}
	}()
	failed := false
	for ch := range q {
		if failed {
			continue // drain, so the reader never blocks
		}
		if d := time.Until(ch.due); d > 0 {
			time.Sleep(d)
		}
		if _, err := dst.Write(ch.b); err != nil {
			failed = true
		}
	}
}

// Down closes the listener and every open connection.
func (p *SocketProxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l != nil {
		p.l.Close()
		p.l = nil
		p.cuts++
	}
	p.gen++
	for c := range p.conns {
		c.Close()
	}
	_ = os.Remove(p.Path)
}
