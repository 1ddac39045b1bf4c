package bench

import (
	"context"
	"fmt"
	"strconv"
	"sync"
)

// rawCalls is what the raw RPC baselines share: the calls waiting for
// their replies, handed to their callers by correlation id as a raw RPC
// client does, and the goroutines (the server, the reply dispatcher) that
// run until the run ends. Each caller has one call outstanding at a time.
type rawCalls struct {
	// newID makes a call's correlation id; nil numbers the calls.
	newID func() string

	mu      sync.Mutex
	seq     uint64
	waiting map[string]chan struct{}
	done    []chan struct{} // per caller, reused
	failed  chan struct{}   // closed with err on a server or dispatcher failure
	err     error

	ctx    context.Context // the loops': ends with stop
	cancel context.CancelFunc
	loops  sync.WaitGroup
}

func newRawCalls(ctx context.Context, callers int) *rawCalls {
	p := &rawCalls{waiting: map[string]chan struct{}{}, done: make([]chan struct{}, callers), failed: make(chan struct{})}
	for i := range p.done {
		p.done[i] = make(chan struct{}, 1)
	}
	p.ctx, p.cancel = context.WithCancel(ctx)
	return p
}

// run runs loop on a goroutine of its own until stop. An error it
// returns fails the calls, as what's failure, unless the run is ending.
func (p *rawCalls) run(what string, loop func(ctx context.Context) error) {
	p.loops.Go(func() {
		if err := loop(p.ctx); err != nil {
			p.fail(fmt.Errorf("%s: %w", what, err))
		}
	})
}

// stop ends the loops and waits for them.
func (p *rawCalls) stop() {
	p.cancel()
	p.loops.Wait()
}

// call makes one call of caller: send sends the request with the
// correlation id given; call then waits for its reply.
func (p *rawCalls) call(ctx context.Context, caller int, send func(id string) error) error {
	id, done := p.add(caller)
	if err := send(id); err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-p.failed:
		return p.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// add registers a call of caller and returns its correlation id and the
// channel its reply signals.
func (p *rawCalls) add(caller int) (string, chan struct{}) {
	var id string
	if p.newID != nil {
		id = p.newID() // outside the lock: it may be slow
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.newID == nil {
		p.seq++
		id = strconv.FormatUint(p.seq, 10)
	}
	done := p.done[caller]
	select { // a reply that came after its caller gave up
	case <-done:
	default:
	}
	p.waiting[id] = done
	return id, done
}

// deliver hands the reply with correlation id to its caller.
func (p *rawCalls) deliver(id string) {
	p.mu.Lock()
	done, ok := p.waiting[id]
	delete(p.waiting, id)
	p.mu.Unlock()
	if ok {
		select {
		case done <- struct{}{}:
		default: // its caller gave up, at the end of the run
		}
	}
}

// fail fails the calls, unless the loops are stopping.
func (p *rawCalls) fail(err error) {
	if p.ctx.Err() != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
		close(p.failed)
	}
}
