package stack

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/pkg/errors"
)

// FaultProxy is an HTTP proxy on loopback in front of the test registry,
// a registry host of its own to the builders (loopback hosts are plain
// HTTP to BuildKit), that injects registry faults on the requests a build
// makes to read manifests (the reads of a release's config start there)
// or to push (uploads and manifest writes).
type FaultProxy struct {
	// Addr is the proxy's host:port, to put in image references.
	Addr string

	srv *http.Server
	mu  sync.Mutex
	// fault is applied to the next manifest requests; failures counts
	// how many more get it (-1: all). A Stall holds them for stallFor
	// from the first one it holds (stallUntil, zero until then), so
	// that when the build reaches the registry does not matter.
	fault      Fault
	failures   int
	stallFor   time.Duration
	stallUntil time.Time
	// served counts the manifest requests answered with a fault.
	served int
	// pushFault is answered to every push request while set (not Pass);
	// held counts the push requests a Stall holds.
	pushFault Fault
	held      int
}

// Fault is what the proxy does to a manifest request.
type Fault int

const (
	// Pass forwards the request.
	Pass Fault = iota
	// Status503 answers 503 Service Unavailable.
	Status503
	// Reset closes the connection without an answer.
	Reset
	// Stall holds the request until the stall ends, then forwards it.
	Stall
	// Status413 answers 413 Request Entity Too Large, as a registry over
	// its quota or size limit does.
	Status413
	// Status401 answers 401 Unauthorized, as a registry does when the
	// credentials expire mid-push.
	Status401
)

// StartFaultProxy starts a proxy that forwards to the stack's registry.
func (s *Stack) StartFaultProxy() (*FaultProxy, error) {
	target, err := url.Parse("http://" + s.Registry)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &FaultProxy{Addr: l.Addr().String()}
	rp := httputil.NewSingleHostReverseProxy(target)
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost || r.Method == http.MethodPut || r.Method == http.MethodPatch {
			p.mu.Lock()
			f := p.pushFault
			p.mu.Unlock()
			switch f {
			case Stall:
				// Held until the client goes away (a builder killed).
				p.mu.Lock()
				p.held++
				p.mu.Unlock()
				<-r.Context().Done()
				return
			case Status503:
				http.Error(w, "injected fault", http.StatusServiceUnavailable)
				return
			case Status413:
				http.Error(w, "injected fault: over quota", http.StatusRequestEntityTooLarge)
				return
			case Status401:
				http.Error(w, "injected fault: credentials expired", http.StatusUnauthorized)
				return
			}
		}
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.Contains(r.URL.Path, "/manifests/") {
			switch p.take() {
			case Status503:
				http.Error(w, "injected fault", http.StatusServiceUnavailable)
				return
			case Reset:
				if hj, ok := w.(http.Hijacker); ok {
					if conn, _, err := hj.Hijack(); err == nil {
						if tc, ok := conn.(*net.TCPConn); ok {
							tc.SetLinger(0) //nolint:errcheck // a reset, not a FIN
						}
						conn.Close()
						return
					}
				}
				panic(http.ErrAbortHandler)
			case Stall:
				p.mu.Lock()
				if p.stallUntil.IsZero() {
					p.stallUntil = time.Now().Add(p.stallFor)
				}
				until := p.stallUntil
				p.mu.Unlock()
				select {
				case <-time.After(time.Until(until)):
				case <-r.Context().Done():
					return
				}
			}
		}
		// The registry's own Location headers name its address: the
		// builder then reads blobs from it directly, which is fine.
		r.Host = target.Host
		rp.ServeHTTP(w, r)
	})}
	go p.srv.Serve(l) //nolint:errcheck // ends with Close
	return p, nil
}

// Inject applies fault to the next n manifest requests (n < 0: all of
// them until the next Inject); a Stall holds each until stall has passed
// from the first request it held.
func (p *FaultProxy) Inject(fault Fault, n int, stall time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault, p.failures, p.stallFor, p.stallUntil, p.served = fault, n, stall, time.Time{}, 0
}

// RefusePushes answers every push request (blob uploads, manifest
// writes) with fault (Status503 or Status413), or holds it until its
// client goes away (Stall), until called with Pass.
func (p *FaultProxy) RefusePushes(fault Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pushFault = fault
}

// HeldPushes is the number of push requests a Stall has held.
func (p *FaultProxy) HeldPushes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held
}

// Served is the number of manifest requests the current fault was
// applied to.
func (p *FaultProxy) Served() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.served
}

func (p *FaultProxy) take() Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fault == Pass || p.failures == 0 {
		return Pass
	}
	if p.failures > 0 {
		p.failures--
	}
	p.served++
	return p.fault
}

// Stop stops the proxy.
func (p *FaultProxy) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return errors.WithStack(p.srv.Shutdown(ctx))
}
