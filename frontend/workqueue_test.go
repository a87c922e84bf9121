package frontend

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

func TestWorkQueueRunsPushedJobs(t *testing.T) {
	q := newWorkQueue(context.Background(), 3)
	var n atomic.Int64
	var tree func(depth int) func() error
	tree = func(depth int) func() error {
		return func() error {
			n.Add(1)
			if depth < 6 {
				for range 3 {
					q.push(tree(depth + 1))
				}
			}
			return nil
		}
	}
	q.push(tree(0))
	if err := q.wait(); err != nil {
		t.Fatal(err)
	}
	// 1 + 3 + 9 + ... + 3^6
	if got, want := n.Load(), int64(1093); got != want {
		t.Fatalf("ran %d jobs, want %d", got, want)
	}
}

func TestWorkQueueStopsAtFirstError(t *testing.T) {
	// One worker: the failing job's pushes are queued, never started.
	q := newWorkQueue(context.Background(), 1)
	boom := errors.New("boom")
	var after atomic.Int64
	q.push(func() error {
		for range 1000 {
			q.push(func() error { after.Add(1); return nil })
		}
		return boom
	})
	if err := q.wait(); !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if n := after.Load(); n != 0 {
		t.Fatalf("%d queued jobs ran after the error", n)
	}
}

func TestWorkQueueEmpty(t *testing.T) {
	if err := newWorkQueue(context.Background(), 4).wait(); err != nil {
		t.Fatal(err)
	}
}

func TestWorkQueueCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	q := newWorkQueue(ctx, 2)
	q.push(func() error { return nil })
	if err := q.wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}
