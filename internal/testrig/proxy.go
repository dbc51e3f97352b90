package testrig

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
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
// sees when the daemon goes away, without touching the daemon.
type SocketProxy struct {
	Path string

	mu    sync.Mutex
	l     net.Listener
	conns map[net.Conn]bool
}

// NewSocketProxy returns a proxy that is down until Up.
func NewSocketProxy(t testing.TB) *SocketProxy {
	p := &SocketProxy{Path: filepath.Join(t.TempDir(), "docker.sock"), conns: map[net.Conn]bool{}}
	t.Cleanup(p.Down)
	return p
}

// Host is the --docker.host value for the proxy.
func (p *SocketProxy) Host() string { return "unix://" + p.Path }

// Up starts accepting.
func (p *SocketProxy) Up(t testing.TB) {
	t.Helper()
	_ = os.Remove(p.Path)
	l, err := net.Listen("unix", p.Path)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.forward(c)
		}
	}()
}

func (p *SocketProxy) forward(c net.Conn) {
	up, err := net.Dial("unix", DockerSocket())
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[up] = true, true
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	c.Close()
	up.Close()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// Down closes the listener and every open connection.
func (p *SocketProxy) Down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l != nil {
		p.l.Close()
		p.l = nil
	}
	for c := range p.conns {
		c.Close()
	}
	_ = os.Remove(p.Path)
}
