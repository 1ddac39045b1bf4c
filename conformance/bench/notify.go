package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/internal/oslo"
	"github.com/switchyard-mq/switchyard/notify"
	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/driver/option"
)

// The notify case: notifier → listener with a pool, as oslo.messaging's
// notifications flow, and the same publishes and acks on a raw client.
//
// The same guarantees on both sides, which are what Switchyard's
// Notifier and Listener give with the rabbit driver's defaults:
//
//   - Publishers: Limits.Inflight goroutines publish at once on one
//     connection and one channel in confirm mode (the driver's shared
//     publishing channel; amqp091-go's Channel on the raw side), each
//     waiting for its publish to be confirmed by the broker before the
//     next (Notifier.Info returns then), so that up to Inflight publishes
//     are in flight. Every message is persistent (delivery mode 2), its
//     body oslo's messagingv2 envelope of an "info" notification whose
//     payload is {"data": "xxx…"} with Limits.Size bytes of data, with
//     content type application/json and encoding utf-8. With the
//     driver's confirms=false neither side waits for confirms.
//   - Routing: to a topic exchange (the control exchange: not durable, as
//     oslo's default amqp_durable_queues=false) with routing key
//     "<topic>.info", bound to two queues, both not durable nor
//     auto-delete: "<topic>.info", which the notifier declares as oslo's
//     does so that notifications wait for a listener (nothing consumes
//     it; it is deleted after the run), and the pool's queue.
//   - Listener: one consumer on the pool's queue, on a connection of its
//     own, manual ack with notify.Listener's default prefetch
//     (notify.DefaultPrefetch, 64), acking each delivery after its
//     handler returns; one handler runs at a time.
//
// A measured pass ends when every notification it published has been
// handled (or at the run's time bound): msg/s is end to end, from the
// first publish until the last is handled.
// Publishers stay at most streamWindow notifications ahead of the
// listener. Switchyard's side also does what oslo's format asks of a
// notifier and a listener: it encodes each notification with ids and a
// timestamp of its own, and decodes each envelope and its request
// context, checks its unique id against the recent ones and runs the
// endpoint's filter; the raw side publishes one pre-encoded body and
// only acks, the floor of the same frames.

// notifyPrefetch is notify.Listener's prefetch for a listener without
// batches, which the raw listener uses too.
const notifyPrefetch = notify.DefaultPrefetch

// notifyEventType is the event type of the benchmark's notifications.
const notifyEventType = "switchyard.bench"

// notifier is a client that runs the notify case. Raw clients that
// cannot (no raw notifications for their scheme) leave the case to
// Switchyard alone.
type notifier interface {
	// notifyRig sets up the case's notifiers and listener; the caller
	// closes the rig.
	notifyRig(ctx context.Context, lim Limits) (*notifyRig, error)
}

// notifyPayload is the payload of the benchmark's notifications:
// {"data": "xxx…"} with size bytes of data, as the RPC cases' arguments.
func notifyPayload(size int) json.RawMessage { return echoArgs(size) }

// notifyRig is one side of the notify case set up: its listener
// consuming, its notifiers ready. It passes notifications in rounds
// (pass), so that two sides can take turns in one run. Its listener's
// handler calls received; publishers stay at most streamWindow
// notifications ahead of it.
type notifyRig struct {
	send  func(ctx context.Context) error // one notification
	close func() error                    // stops the listener, deletes what the rig declared

	credits chan struct{} // one per notification published and not yet handled
	handled atomic.Int64
	meter   atomic.Pointer[meter] // the pass being measured, if any

	mu      sync.Mutex
	target  int64         // handled at which the pass in progress ends
	reached chan struct{} // closed when handled reaches target

	failOnce sync.Once
	failed   chan struct{} // closed with err when the listener fails
	err      error
}

func newNotifyRig() *notifyRig {
	return &notifyRig{credits: make(chan struct{}, streamWindow), failed: make(chan struct{})}
}

// fail ends the rig's passes with the listener's failure err.
func (r *notifyRig) fail(err error) {
	r.failOnce.Do(func() { r.err = fmt.Errorf("listener: %w", err); close(r.failed) })
}

// received counts a notification the listener handled.
func (r *notifyRig) received() {
	select {
	case <-r.credits:
	default: // a redelivery: its credit was returned with its first delivery
	}
	n := r.handled.Add(1)
	if m := r.meter.Load(); m != nil {
		m.done(1)
	}
	r.mu.Lock()
	if r.reached != nil && n >= r.target {
		close(r.reached)
		r.reached = nil
	}
	r.mu.Unlock()
}

// publish publishes one notification once the window has room for it.
func (r *notifyRig) publish(ctx context.Context) error {
	select {
	case r.credits <- struct{}{}:
	case <-r.failed:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
	return r.send(ctx)
}

// pass has publishers publish n notifications between them and returns
// once the listener has handled them, or when ctx ends (nil: the run's
// bound; what was handled counts). m, if not nil, counts each.
func (r *notifyRig) pass(ctx context.Context, n, publishers int, m *meter) error {
	r.mu.Lock()
	r.target = r.handled.Load() + int64(n)
	reached := make(chan struct{})
	r.reached = reached
	r.mu.Unlock()
	r.meter.Store(m)
	defer r.meter.Store(nil)
	var tickets atomic.Int64
	fns := make([]func(context.Context) error, 0, publishers+1)
	for range publishers {
		fns = append(fns, func(ctx context.Context) error {
			for ctx.Err() == nil && tickets.Add(1) <= int64(n) {
				if err := r.publish(ctx); err != nil {
					return stopped(ctx, fmt.Errorf("notify: %w", err))
				}
			}
			return nil
		})
	}
	fns = append(fns, func(ctx context.Context) error {
		select {
		case <-reached:
		case <-r.failed:
			return r.err
		case <-ctx.Done():
		}
		return nil
	})
	return runAll(ctx, fns...)
}

// warm passes one notification, which makes the connections, the
// channels and the routes.
func (r *notifyRig) warm(ctx context.Context) error {
	if err := r.pass(ctx, 1, 1, nil); err != nil {
		return fmt.Errorf("warm-up notification: %w", err)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("warm-up notification: %w", ctx.Err())
	}
	return nil
}

// runNotify runs the notify case on cl: sets it up, warms it up, and
// measures publishers passing lim.Messages notifications.
func runNotify(ctx context.Context, cl notifier, lim Limits, publishers int, m *meter) (err error) {
	r, err := cl.notifyRig(ctx, lim)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, r.close()) }()
	if err := r.warm(ctx); err != nil {
		return err
	}
	return m.measure(ctx, lim.Duration, func(ctx context.Context) error {
		return r.pass(ctx, lim.Messages, publishers, m)
	})
}

// notifyRig sets up the notify case on notify.Notifier and
// notify.Listener, each on a transport of its own, with a control
// exchange of the rig's own (the URL's control_exchange option,
// overridden) so that the exchange can be deleted afterwards with the
// queues.
func (s *switchyardClient) notifyRig(ctx context.Context, lim Limits) (_ *notifyRig, err error) {
	exchange, topic := uniqueName("notify"), uniqueName("notify")
	pool := topic + "-pool"
	u := s.url.Clone()
	if u.Options == nil {
		u.Options = map[string][]string{}
	}
	u.Options.Set(option.ControlExchange.Spec().Name, exchange)
	sides := &switchyardClient{url: u, opts: s.opts}
	pubTr, subTr, closeBoth, err := sides.openPair(ctx)
	if err != nil {
		return nil, err
	}
	r := newNotifyRig()
	cleanups := undoStack{closeBoth, func() error {
		cctx, cancel := cleanupContext(ctx)
		defer cancel()
		var errs []error
		for _, q := range []string{pool, oslo.NotificationKey(topic, oslo.PriorityInfo)} {
			_, derr := subTr.DeleteQueue(cctx, q)
			errs = append(errs, derr)
		}
		return errors.Join(append(errs, subTr.DeleteExchange(cctx, exchange))...)
	}}
	r.close = cleanups.undo
	defer func() {
		if err != nil {
			err = errors.Join(err, r.close())
		}
	}()
	listener, err := notify.NewListener(subTr, []transport.Target{{Topic: topic}}, []notify.Endpoint{{
		Priorities: []notify.Priority{notify.Info},
		Handle:     func(context.Context, *notify.Notification) error { r.received(); return nil },
	}}, notify.WithPool(pool))
	if err != nil {
		return nil, err
	}
	if err := listener.Start(ctx); err != nil {
		return nil, err
	}
	cleanups = append(cleanups, func() error {
		cctx, cancel := cleanupContext(ctx)
		defer cancel()
		return listener.Stop(cctx)
	})
	n, err := notify.NewNotifier(pubTr, "bench.switchyard", notify.WithTopics(topic))
	if err != nil {
		return nil, err
	}
	payload := notifyPayload(lim.Size)
	r.send = func(ctx context.Context) error { return n.Info(ctx, notifyEventType, payload) }
	return r, nil
}

// notifyRig sets up the notify case on amqp091-go as a careful user
// writes it with the guarantees of Switchyard's notifier and listener
// (see the case's description above): the publishers share one channel
// in confirm mode (when r confirms), each waiting for its publish's
// deferred confirm; the listener acks each delivery on a channel with
// notify.Listener's prefetch.
func (r *rabbitClient) notifyRig(ctx context.Context, lim Limits) (_ *notifyRig, err error) {
	pubConn, subConn, closeBoth, err := r.dialPair()
	if err != nil {
		return nil, err
	}
	rig := newNotifyRig()
	cleanups := undoStack{closeBoth}
	rig.close = cleanups.undo
	defer func() {
		if err != nil {
			err = errors.Join(err, rig.close())
		}
	}()
	exchange, topic := uniqueName("raw-notify"), uniqueName("raw-notify")
	key := oslo.NotificationKey(topic, oslo.PriorityInfo)
	pool := topic + "-pool"
	deleteAll, err := declareNotifyTopology(subConn, exchange, key, pool)
	if err != nil {
		return nil, err
	}
	cleanups = append(cleanups, deleteAll)
	deliveries, err := consume(subConn, pool, false, false, notifyPrefetch)
	if err != nil {
		return nil, err
	}
	send, err := r.publisher(pubConn, exchange)
	if err != nil {
		return nil, err
	}
	body, err := oslo.WrapNotification(&oslo.Notification{
		MessageID: oslo.NewDashedID(), UniqueID: oslo.NewID(), PublisherID: "bench.raw", EventType: notifyEventType,
		Priority: oslo.PriorityInfo, Payload: notifyPayload(lim.Size), Timestamp: oslo.FormatTimestamp(time.Now()),
	})
	if err != nil {
		return nil, err
	}
	msg := amqp.Publishing{ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: amqp.Persistent, Body: body}
	rig.send = func(ctx context.Context) error { return send(ctx, key, msg) }

	lctx, stopListener := context.WithCancel(context.WithoutCancel(ctx))
	listening := make(chan struct{})
	cleanups = append(cleanups, func() error { stopListener(); <-listening; return nil })
	go func() {
		defer close(listening)
		for {
			d, err := next(lctx, deliveries)
			if err == nil {
				rig.received()
				err = d.Ack(false)
			}
			if err != nil {
				if lctx.Err() == nil {
					rig.fail(err)
				}
				return
			}
		}
	}()
	return rig, nil
}

// declareNotifyTopology declares, on a channel of conn, what a notifier
// and a listener with a pool declare with oslo's defaults: the topic
// exchange, the notifier's queue key and the pool's queue, both bound to
// it with key. It returns the function that deletes them.
func declareNotifyTopology(conn *amqp.Connection, exchange, key, pool string) (deleteAll func() error, err error) {
	deleteExchange, err := declareTopicExchange(conn, exchange)
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, errors.Join(err, deleteExchange())
	}
	defer ch.Close()
	deletes := undoStack{deleteExchange}
	deleteAll = deletes.undo
	for _, q := range []string{key, pool} {
		deleteQueue, err := declareQueue(conn, q, false)
		if err != nil {
			return nil, errors.Join(err, deleteAll())
		}
		deletes = append(deletes, deleteQueue)
		if err := ch.QueueBind(q, key, exchange, false, nil); err != nil {
			return nil, errors.Join(fmt.Errorf("bind queue %s to %s with key %s: %w", q, exchange, key, err), deleteAll())
		}
	}
	return deleteAll, nil
}
