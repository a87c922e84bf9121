package stack

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"testing"
	"time"
)

// TestShapedLink: what crosses the link arrives intact and in order, no
// sooner than the profile allows (a transfer takes at least its size over
// the bandwidth plus the handshake's round trip), and is counted. Only
// lower bounds are asserted: a busy machine makes the link slower, never
// faster.
func TestShapedLink(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	profile := LinkProfile{Name: "test", RTT: 40 * time.Millisecond, Mbit: 16} // 2 MB/s
	link, err := (&Stack{Registry: echo.Addr().String()}).StartShapedLink(profile)
	if err != nil {
		t.Fatal(err)
	}
	defer link.Close()

	payload := make([]byte, 1<<20)
	_, _ = rand.Read(payload)
	start := time.Now()
	c, err := net.Dial("tcp", link.Addr)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		_, _ = c.Write(payload)
		_ = c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	c.Close()
	if !bytes.Equal(got, payload) {
		t.Fatalf("the echo came back with %d bytes, not the %d sent, or changed", len(got), len(payload))
	}
	// 1 MiB up and down on links of 2 MB/s each, pipelined: at least the
	// time to send it once, plus the handshake and a round trip.
	least := time.Duration(float64(len(payload))/2e6*float64(time.Second)) + 2*profile.RTT
	if elapsed < least {
		t.Fatalf("1 MiB echoed in %s through a %s link: faster than its %s minimum", elapsed, profile, least)
	}
	if link.BytesUp() != int64(len(payload)) || link.BytesDown() != int64(len(payload)) {
		t.Fatalf("the link counted %d bytes up and %d down, not %d each way", link.BytesUp(), link.BytesDown(), len(payload))
	}
}
