package conformance

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/switchyard-mq/switchyard/transport"
)

// bodyCases check that bodies arrive byte for byte, whatever their size
// and content, and that concurrent publishing loses nothing.
func bodyCases() []testCase {
	allBytes := make([]byte, 512)
	for i := range allBytes {
		allBytes[i] = byte(i) // every value, twice, NUL and 0xff included
	}
	mebibyte := make([]byte, 1<<20)
	rng := rand.New(rand.NewChaCha8([32]byte{'s', 'w', 'i', 't', 'c', 'h'}))
	for i := range mebibyte {
		mebibyte[i] = byte(rng.Uint32())
	}
	return []testCase{
		{"empty", func(e *env) { roundTripBody(e, nil) }},
		{"one-mebibyte", func(e *env) { roundTripBody(e, mebibyte) }},
		{"all-byte-values", func(e *env) { roundTripBody(e, allBytes) }},
		{"concurrent-publishers", concurrentPublishers},
	}
}

// roundTripBody publishes body and checks that it arrives unchanged.
func roundTripBody(e *env, body []byte) {
	tr := e.open()
	q := e.simpleQueue(tr, "bodies")
	sent := bytes.Clone(body)
	e.publish(tr, "", q, transport.Message{Body: sent})
	clear(sent) // Publish copied the body: the caller may reuse its buffer
	d := e.receive(e.consume(tr, q, transport.ConsumeOptions{}))
	if !bytes.Equal(d.Body, body) {
		e.t.Errorf("body of %d bytes came back as %d bytes, different (first 64: %q)", len(body), len(d.Body), truncate(d.Body))
	}
	e.ack(d)
}

// concurrentPublishers: 32 goroutines publishing at once on one transport
// lose nothing, duplicate nothing and mix up no body.
func concurrentPublishers(e *env) {
	const publishers, each = 32, 50
	tr := e.open()
	q := e.simpleQueue(tr, "concurrent")
	errs := make([]error, publishers)
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range each {
				body := fmt.Appendf(nil, "publisher-%02d-message-%03d", p, i)
				if err := tr.Publish(e.ctx, "", q, transport.Message{Body: body}); err != nil {
					errs[p] = fmt.Errorf("publisher %d, message %d: %w", p, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		e.t.Fatal(err)
	}
	var want []string
	for p := range publishers {
		for i := range each {
			want = append(want, fmt.Sprintf("publisher-%02d-message-%03d", p, i))
		}
	}
	c := e.consume(tr, q, transport.ConsumeOptions{})
	e.wantSameBodies("queue "+q, e.receiveUpTo(c, len(want)), want)
	e.expectNone(c)
}
