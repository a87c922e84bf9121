package stack

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/errors"
)

// LinkProfile is a network between a host and the registry: its round
// trip time and its bandwidth, the same both ways.
type LinkProfile struct {
	Name string
	RTT  time.Duration
	// Mbit is the bandwidth in megabits per second.
	Mbit float64
}

func (p LinkProfile) String() string {
	return fmt.Sprintf("%s (%s RTT, %g Mbit/s)", p.Name, p.RTT, p.Mbit)
}

// The link profiles the benchmark measures deploys under: a CI runner
// pushing to a cloud registry in its region, and an office link.
var (
	LinkCI   = LinkProfile{Name: "ci", RTT: 20 * time.Millisecond, Mbit: 200}
	LinkSlow = LinkProfile{Name: "slow", RTT: 60 * time.Millisecond, Mbit: 20}
)

// LinkProfiles are the profiles by name.
var LinkProfiles = map[string]LinkProfile{LinkCI.Name: LinkCI, LinkSlow.Name: LinkSlow}

// ShapedLink is a TCP proxy on loopback in front of the test registry that
// behaves like a network of a LinkProfile: each direction is a link of the
// profile's bandwidth, shared by every connection as a real link is, and
// every chunk arrives half a round trip after it left; a new connection
// costs one round trip (its handshake). Nothing leaves the machine: it
// shapes in user space, so it needs no netem and no privileges, and its
// address is a registry host of its own (loopback hosts are plain HTTP to
// BuildKit and to Docker Engine).
type ShapedLink struct {
	// Addr is the link's host:port, to put in image references.
	Addr    string
	Profile LinkProfile

	l      net.Listener
	target string
	up     *direction // client to registry
	down   *direction // registry to client
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool
}

// direction is one way of a link: when it is next free to send.
type direction struct {
	bytesPerSec float64
	oneWay      time.Duration
	mu          sync.Mutex
	free        time.Time
	bytes       atomic.Int64
}

// arrival books n bytes on the link and returns when they arrive: after
// what is already queued has been sent, their own transmission time, and
// the one-way delay.
func (d *direction) arrival(now time.Time, n int) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	start := now
	if d.free.After(now) {
		start = d.free
	}
	d.free = start.Add(time.Duration(float64(n) / d.bytesPerSec * float64(time.Second)))
	d.bytes.Add(int64(n))
	return d.free.Add(d.oneWay)
}

// StartShapedLink starts a shaped link to the stack's registry.
func (s *Stack) StartShapedLink(p LinkProfile) (*ShapedLink, error) {
	if p.RTT < 0 || p.Mbit <= 0 {
		return nil, errors.Errorf("link profile %s: the RTT must be ≥ 0 and the bandwidth > 0", p.Name)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	rate := p.Mbit * 1e6 / 8
	link := &ShapedLink{Addr: l.Addr().String(), Profile: p, l: l, target: s.Registry, conns: map[net.Conn]bool{},
		up: &direction{bytesPerSec: rate, oneWay: p.RTT / 2}, down: &direction{bytesPerSec: rate, oneWay: p.RTT / 2}}
	link.wg.Add(1)
	go link.accept()
	return link, nil
}

// BytesDown is how many bytes the link has carried from the registry.
func (l *ShapedLink) BytesDown() int64 { return l.down.bytes.Load() }

// BytesUp is how many bytes the link has carried to the registry.
func (l *ShapedLink) BytesUp() int64 { return l.up.bytes.Load() }

// Close stops the link and closes its connections.
func (l *ShapedLink) Close() error {
	l.mu.Lock()
	l.closed = true
	for c := range l.conns {
		c.Close()
	}
	l.mu.Unlock()
	err := l.l.Close()
	l.wg.Wait()
	return err
}

func (l *ShapedLink) track(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return false
	}
	l.conns[c] = true
	return true
}

func (l *ShapedLink) accept() {
	defer l.wg.Done()
	for {
		client, err := l.l.Accept()
		if err != nil {
			return
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.serve(client)
		}()
	}
}

// serve carries one connection: after a round trip (the handshake), each
// direction is read into chunks that a second goroutine delivers at their
// arrival times.
func (l *ShapedLink) serve(client net.Conn) {
	if !l.track(client) {
		return
	}
	time.Sleep(l.Profile.RTT)
	server, err := net.Dial("tcp", l.target)
	if err != nil || !l.track(server) {
		client.Close()
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); l.pipe(server, client, l.up) }()
	go func() { defer wg.Done(); l.pipe(client, server, l.down) }()
	wg.Wait()
	l.mu.Lock()
	delete(l.conns, client)
	delete(l.conns, server)
	l.mu.Unlock()
	client.Close()
	server.Close()
}

// pipe copies src to dst through d: chunks queue in arrival order (a
// link delivers in order) and are written when they arrive. The queue is
// unbounded, as a TCP window large enough for the link would be.
func (l *ShapedLink) pipe(dst, src net.Conn, d *direction) {
	type chunk struct {
		data []byte
		at   time.Time
	}
	queue := make(chan chunk, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range queue {
			time.Sleep(time.Until(c.at))
			if _, err := dst.Write(c.data); err != nil {
				src.Close()
				for range queue {
				}
				return
			}
		}
		// The sender closed: so does its half of the link.
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	for {
		buf := make([]byte, 32<<10)
		n, err := src.Read(buf)
		if n > 0 {
			queue <- chunk{buf[:n], d.arrival(time.Now(), n)}
		}
		if err != nil {
			if err != io.EOF {
				dst.Close()
			}
			break
		}
	}
	close(queue)
	<-done
}
