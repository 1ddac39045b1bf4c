package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// setupTimeout bounds what a run does besides measuring: connecting,
// declaring, warming up and cleaning up. A broker that stops answering
// fails the run rather than hanging it.
const setupTimeout = time.Minute

// Run runs every case on every backend, Switchyard's side and then the
// raw client's, each run bounded by lim, and shows their progress on w:
// a line per case and backend, rewritten in place on a terminal. It
// returns every run's result, Switchyard's with its ratio to the raw
// client's, and the errors of the runs that failed, joined. When ctx
// ends, Run returns after the run in progress.
func Run(ctx context.Context, w io.Writer, backends []*Backend, cases []Case, lim Limits) ([]Result, error) {
	p := newProgress(w)
	var results []Result
	var failures []error
	for _, c := range cases {
		for _, b := range backends {
			line := p.line(c, b)
			for _, cl := range b.sidesFor(c) {
				r := runOne(ctx, c, b, cl, lim, line)
				results = append(results, r)
				if r.Err != nil {
					failures = append(failures, fmt.Errorf("%s on %s, %s: %w", c.Name, b.label, cl.name(), r.Err))
				}
				if ctx.Err() != nil {
					line.finish()
					setRatios(results)
					return results, errors.Join(failures...)
				}
			}
			line.finish()
		}
	}
	setRatios(results)
	return results, errors.Join(failures...)
}

// runOne runs one case on one client, showing its progress on line.
func runOne(ctx context.Context, c Case, b *Backend, cl client, lim Limits, line *progressLine) Result {
	ctx, cancel := context.WithTimeout(ctx, lim.Duration+setupTimeout)
	defer cancel()
	m := &meter{}
	stop := line.watch(cl.name(), c.Unit, m)
	err := runCase(ctx, c, cl, lim, m)
	stop()
	if err == nil && m.ops.Load() == 0 {
		err = errors.New("no operation completed")
	}
	r := newResult(c, cl, m, err)
	r.Backend, r.scheme = b.label, b.scheme
	line.result(r)
	return r
}
