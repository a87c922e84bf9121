package frontend

import (
	"context"
	"sync"
)

// workQueue runs jobs on a fixed number of workers; a job may push more
// jobs (a directory pushes its entries). Unlike errgroup.SetLimit, pushing
// never blocks, so a job that pushes cannot deadlock the workers waiting
// for a free slot. The first error cancels what is still queued.
type workQueue struct {
	ctx     context.Context
	mu      sync.Mutex
	cond    *sync.Cond
	jobs    []func() error
	pending int // queued plus running
	err     error
	workers int
}

func newWorkQueue(ctx context.Context, workers int) *workQueue {
	q := &workQueue{ctx: ctx, workers: workers}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// push queues a job. It may be called from a running job.
func (q *workQueue) push(job func() error) {
	q.mu.Lock()
	q.jobs = append(q.jobs, job)
	q.pending++
	q.mu.Unlock()
	q.cond.Signal()
}

// wait runs the queued jobs, and the jobs they push, until none is left or
// one failed, and returns the first error.
func (q *workQueue) wait() error {
	var wg sync.WaitGroup
	for range q.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q.work()
		}()
	}
	wg.Wait()
	if q.err == nil {
		q.err = q.ctx.Err()
	}
	return q.err
}

func (q *workQueue) work() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		for len(q.jobs) == 0 && q.pending > 0 && q.err == nil {
			q.cond.Wait()
		}
		if q.pending == 0 || q.err != nil {
			q.cond.Broadcast()
			return
		}
		job := q.jobs[len(q.jobs)-1]
		q.jobs = q.jobs[:len(q.jobs)-1]
		q.mu.Unlock()
		err := job()
		if err == nil {
			err = q.ctx.Err()
		}
		q.mu.Lock()
		q.pending--
		if err != nil && q.err == nil {
			q.err = err
			q.jobs = nil
		}
		if q.pending == 0 || q.err != nil {
			q.cond.Broadcast()
		}
	}
}
