package amqp1

import (
	"context"
	"fmt"
	"sync"

	amqp "github.com/Azure/go-amqp"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

// protonFlavour maps the model onto a broker that has only queues, named by
// their address and made on first use: the broker of Qpid Proton's
// examples, and the profile for any AMQP 1.0 peer that is not RabbitMQ.
// It has no exchanges and no topology API, keeps nothing on disk, and
// drops a message that a consumer releases (or leaves unsettled when it
// goes), so the driver requeues by publishing a copy.
type protonFlavour struct {
	c *conn

	mu sync.Mutex
	// dynamic holds the links that keep server-named queues alive: the
	// broker deletes a dynamic queue with its last link.
	dynamic map[string]heldQueue
}

// heldQueue is the link (and its session) that keeps a dynamic queue.
type heldQueue struct {
	sess *amqp.Session
	rcv  *amqp.Receiver
}

// protonCapabilities: queues, credit and application properties, and a
// delivery count, since every return to a queue is the driver's own
// (counted in the copy it publishes); see the package documentation for
// the rest.
const protonCapabilities = driver.Capabilities(
	driver.CapPrefetch |
		driver.CapHeaders |
		driver.CapServerNamedQueue |
		driver.CapCrossProcess |
		driver.CapDeliveryCount |
		driver.CapTransientQueue)

func newProtonFlavour(c *conn) (*protonFlavour, error) {
	if c.s.vhost != "" {
		return nil, fmt.Errorf("%w: virtual host %q: this broker (flavour proton) has no virtual hosts; drop the path from the URL", driver.ErrNotFound, c.s.vhost)
	}
	return &protonFlavour{c: c, dynamic: map[string]heldQueue{}}, nil
}

func (f *protonFlavour) name() flavourName                 { return flavourProton }
func (f *protonFlavour) capabilities() driver.Capabilities { return protonCapabilities }
func (f *protonFlavour) rabbit() bool                      { return false }
func (f *protonFlavour) addressV2() bool                   { return false }
func (f *protonFlavour) requeueByCopy() bool               { return true }
func (f *protonFlavour) countReturns() bool                { return false }
func (f *protonFlavour) detachLinks() bool                 { return true }

func (f *protonFlavour) consumeAddress(queue string) (string, error) { return queue, nil }

// publishAddress: the default exchange is the only exchange; the routing
// key is the queue's address. An empty key names no queue: the message is
// dropped, as an unroutable one is.
func (f *protonFlavour) publishAddress(exchange, key string) (string, string, bool, error) {
	if exchange != "" {
		return "", "", false, fmt.Errorf("%w: exchange %q: %w", driver.ErrNotFound, exchange, errNoExchanges)
	}
	return key, "", key != "", nil
}

func (f *protonFlavour) declareExchange(context.Context, driver.Exchange) error {
	return fmt.Errorf("%w: %w", driver.ErrUnsupported, errNoExchanges)
}

// deleteExchange: no exchange exists, and deleting a missing one is fine.
func (f *protonFlavour) deleteExchange(context.Context, string) error { return nil }

func (f *protonFlavour) bind(context.Context, driver.Binding) error {
	return fmt.Errorf("%w: %w", driver.ErrUnsupported, errNoExchanges)
}

func (f *protonFlavour) unbind(context.Context, driver.Binding) error {
	return fmt.Errorf("%w: %w", driver.ErrUnsupported, errNoExchanges)
}

// declareQueue: a named queue comes into being with its first message or
// link, so there is nothing to do. A server-named one is a dynamic node,
// held by a link without credit until DeleteQueue or Close.
func (f *protonFlavour) declareQueue(ctx context.Context, q driver.Queue) (string, error) {
	if q.Durable {
		return "", fmt.Errorf("%w: durable queues (this broker keeps nothing on disk)", driver.ErrUnsupported)
	}
	if q.Exclusive || q.AutoDelete || q.MessageTTL > 0 || q.Expires > 0 || q.MaxLength > 0 || q.DeadLetterExchange != "" || q.DeliveryLimit > 0 {
		return "", fmt.Errorf("%w: queue arguments (this broker has plain queues only)", driver.ErrUnsupported)
	}
	if q.Name != "" {
		return q.Name, nil
	}
	sess, _, err := f.c.newSession(ctx, nil)
	if err != nil {
		return "", err
	}
	hctx, cancel := handshakeContext(ctx)
	rcv, err := sess.NewReceiver(hctx, "", &amqp.ReceiverOptions{DynamicAddress: true, Credit: -1})
	cancel()
	if err != nil {
		closeSession(sess)
		return "", fmt.Errorf("attach a dynamic receiving link: %w", mapError(err))
	}
	name := rcv.Address()
	f.mu.Lock()
	f.dynamic[name] = heldQueue{sess, rcv}
	f.mu.Unlock()
	return name, nil
}

// deleteQueue drops the queue's messages (see purgeQueue) and, for a
// server-named queue, ends the link that holds it; the broker deletes an
// empty queue with its last link.
func (f *protonFlavour) deleteQueue(ctx context.Context, name string) (int, error) {
	n, err := f.purgeQueue(ctx, name)
	f.mu.Lock()
	held, ok := f.dynamic[name]
	delete(f.dynamic, name)
	f.mu.Unlock()
	if ok {
		f.c.endLink(held.sess, held.rcv)
	}
	return n, err
}

// purgeQueue drops the queue's ready messages and counts them. The broker
// has no purge and no way to tell that a queue is empty, so the driver
// publishes a marker message to the queue and consumes up to it: queues are
// first in, first out, so what came before the marker is what was ready.
// If other consumers hold credit on the queue one of them may take the
// marker (the driver's consumers drop it silently); the purge then waits
// until ctx ends.
func (f *protonFlavour) purgeQueue(ctx context.Context, name string) (int, error) {
	marker := randomName("marker-")
	sess, _, err := f.c.newSession(ctx, nil)
	if err != nil {
		return 0, err
	}
	hctx, cancel := handshakeContext(ctx)
	rcv, err := sess.NewReceiver(hctx, name, &amqp.ReceiverOptions{Credit: -1})
	cancel()
	if err != nil {
		closeSession(sess)
		return 0, fmt.Errorf("attach a receiving link to purge %s: %w", name, mapError(err))
	}
	defer f.c.endLink(sess, rcv)
	m := &amqp.Message{
		Data:        [][]byte{nil},
		Properties:  &amqp.MessageProperties{MessageID: marker},
		Annotations: amqp.Annotations{annMarker: true},
	}
	if err := f.c.send(ctx, name, m); err != nil {
		return 0, fmt.Errorf("purge %s: publish its end marker: %w", name, err)
	}
	const batch = 500
	credit := 0
	for n := 0; ; {
		if credit == 0 {
			if err := rcv.IssueCredit(batch); err != nil {
				return n, fmt.Errorf("purge %s: %w", name, err)
			}
			credit = batch
		}
		got, err := rcv.Receive(ctx, nil)
		if err != nil {
			return n, fmt.Errorf("purge %s after %d messages: %w", name, n, mapError(err))
		}
		credit--
		if err := rcv.AcceptMessage(ctx, got); err != nil {
			return n, fmt.Errorf("purge %s after %d messages: %w", name, n, mapError(err))
		}
		if isMarker(got) {
			if got.Properties != nil && got.Properties.MessageID == marker {
				return n, nil
			}
			continue // another purge's marker
		}
		n++
	}
}

// checkQueue: the broker cannot tell whether a queue exists.
func (f *protonFlavour) checkQueue(context.Context, string) error { return nil }

func (f *protonFlavour) close() error {
	f.mu.Lock()
	held := f.dynamic
	f.dynamic = map[string]heldQueue{}
	f.mu.Unlock()
	for _, h := range held {
		f.c.endLink(h.sess, h.rcv)
	}
	return nil
}
