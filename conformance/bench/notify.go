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
//   - Publishers: Limits.Inflight goroutines publish at once, each
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
//     own, manual ack with prefetch 2 (notify.Listener's: twice its batch
//     size of 1), acking each delivery after its handler returns; one
//     handler runs at a time.
//
// A run ends when every published notification has been handled (or at
// the run's time bound): msg/s is end to end, publish until received.
// Publishers stay at most streamWindow notifications ahead of the
// listener. Switchyard's side also decodes each envelope and its
// request context, checks the notification's unique id against the
// recent ones, and runs the endpoint's filter: what a listener must do;
// the raw side publishes one pre-encoded body and only acks.

// notifyPrefetch is notify.Listener's prefetch for a listener without
// batches, which the raw listener uses too.
const notifyPrefetch = 2

// notifyEventType is the event type of the benchmark's notifications.
const notifyEventType = "switchyard.bench"

// notifier is a client that runs the notify case. Raw clients that
// cannot (no raw notifications for their scheme) leave the case to
// Switchyard alone.
type notifier interface {
	// notify runs the notify case with publishers publishing at once.
	notify(ctx context.Context, lim Limits, publishers int, m *meter) error
}

// notifyPayload is the payload of the benchmark's notifications:
// {"data": "xxx…"} with size bytes of data, as the RPC cases' arguments.
func notifyPayload(size int) json.RawMessage { return echoArgs(size) }

// notifyFlow counts what the listener handles and keeps the publishers
// at most streamWindow notifications ahead of it. Any number of
// publishers and one listener use it.
type notifyFlow struct {
	m       *meter
	credits chan struct{} // one per notification published and not yet handled
	total   int64         // notifications of the measured part
	handled atomic.Int64  // warm-up included
	warmed  chan struct{} // closed when the warm-up notification is handled
	all     chan struct{} // closed when the last notification is handled

	failOnce sync.Once
	failed   chan struct{} // closed with err when the listener fails
	err      error
}

func newNotifyFlow(m *meter, total int) *notifyFlow {
	return &notifyFlow{m: m, credits: make(chan struct{}, streamWindow), total: int64(total),
		warmed: make(chan struct{}), all: make(chan struct{}), failed: make(chan struct{})}
}

// publish publishes one notification once the window has room for it.
func (f *notifyFlow) publish(ctx context.Context, publish func(ctx context.Context) error) error {
	select {
	case f.credits <- struct{}{}:
	case <-f.failed:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
	return publish(ctx)
}

// fail ends the run with the listener's failure err.
func (f *notifyFlow) fail(err error) {
	f.failOnce.Do(func() { f.err = fmt.Errorf("listener: %w", err); close(f.failed) })
}

// received counts a handled notification; the listener's handler calls
// it. The first is the warm-up's, which the meter does not count.
func (f *notifyFlow) received() {
	select {
	case <-f.credits:
	default: // a redelivery: its credit was returned with its first delivery
	}
	switch n := f.handled.Add(1); {
	case n == 1:
		close(f.warmed)
	case n <= f.total+1:
		f.m.done(1)
		if n == f.total+1 {
			close(f.all)
		}
	}
}

// measureNotifications passes one notification to warm up (it makes the
// connections, the channels and the routes), then measures publishers
// publishing f.total notifications between them until the listener has
// handled them all.
func measureNotifications(ctx context.Context, lim Limits, publishers int, f *notifyFlow, publish func(ctx context.Context) error) error {
	if err := f.publish(ctx, publish); err != nil {
		return fmt.Errorf("warm-up notification: %w", err)
	}
	select {
	case <-f.warmed:
	case <-f.failed:
		return f.err
	case <-ctx.Done():
		return fmt.Errorf("warm-up notification: not received: %w", ctx.Err())
	}
	return f.m.measure(ctx, lim.Duration, func(ctx context.Context) error {
		var tickets atomic.Int64
		fns := make([]func(context.Context) error, 0, publishers+1)
		for range publishers {
			fns = append(fns, func(ctx context.Context) error {
				for ctx.Err() == nil && tickets.Add(1) <= f.total {
					if err := f.publish(ctx, publish); err != nil {
						return stopped(ctx, fmt.Errorf("notify: %w", err))
					}
				}
				return nil
			})
		}
		fns = append(fns, func(ctx context.Context) error {
			select {
			case <-f.all:
			case <-f.failed:
				return f.err
			case <-ctx.Done(): // the run's bound: what was handled counts
			}
			return nil
		})
		return runAll(ctx, fns...)
	})
}

// notify runs the notify case through notify.Notifier and notify.Listener,
// each on a transport of its own, with a control exchange of the run's
// own (the URL's control_exchange option, overridden) so that the
// exchange can be deleted afterwards with the queues.
func (s *switchyardClient) notify(ctx context.Context, lim Limits, publishers int, m *meter) (err error) {
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
		return err
	}
	defer func() { err = errors.Join(err, closeBoth()) }()
	defer func() {
		cctx, cancel := cleanupContext(ctx)
		defer cancel()
		errs := []error{err}
		for _, q := range []string{pool, oslo.NotificationKey(topic, oslo.PriorityInfo)} {
			_, derr := subTr.DeleteQueue(cctx, q)
			errs = append(errs, derr)
		}
		err = errors.Join(append(errs, subTr.DeleteExchange(cctx, exchange))...)
	}()

	f := newNotifyFlow(m, lim.Messages)
	listener, err := notify.NewListener(subTr, []transport.Target{{Topic: topic}}, []notify.Endpoint{{
		Priorities: []notify.Priority{notify.Info},
		Handle:     func(context.Context, *notify.Notification) error { f.received(); return nil },
	}}, notify.WithPool(pool))
	if err != nil {
		return err
	}
	if err := listener.Start(ctx); err != nil {
		return err
	}
	defer func() {
		cctx, cancel := cleanupContext(ctx)
		defer cancel()
		err = errors.Join(err, listener.Stop(cctx))
	}()
	n, err := notify.NewNotifier(pubTr, "bench.switchyard", notify.WithTopics(topic))
	if err != nil {
		return err
	}
	payload := notifyPayload(lim.Size)
	return measureNotifications(ctx, lim, publishers, f, func(ctx context.Context) error {
		return n.Info(ctx, notifyEventType, payload)
	})
}

// notify runs the notify case on amqp091-go as a careful user writes
// it with the guarantees of Switchyard's notifier and listener (see the
// case's description above): the publishers share one channel in
// confirm mode (when r confirms), each waiting for its publish's
// deferred confirm; the listener acks each delivery on a channel with
// prefetch 2.
func (r *rabbitClient) notify(ctx context.Context, lim Limits, publishers int, m *meter) (err error) {
	pubConn, subConn, closeBoth, err := r.dialPair()
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, closeBoth()) }()
	exchange, topic := uniqueName("raw-notify"), uniqueName("raw-notify")
	key := oslo.NotificationKey(topic, oslo.PriorityInfo)
	pool := topic + "-pool"
	deleteAll, err := declareNotifyTopology(subConn, exchange, key, pool)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, deleteAll()) }()
	deliveries, err := consume(subConn, pool, false, false, notifyPrefetch)
	if err != nil {
		return err
	}
	send, err := r.publisher(pubConn, exchange)
	if err != nil {
		return err
	}
	body, err := oslo.WrapNotification(&oslo.Notification{
		MessageID: oslo.NewDashedID(), UniqueID: oslo.NewID(), PublisherID: "bench.raw", EventType: notifyEventType,
		Priority: oslo.PriorityInfo, Payload: notifyPayload(lim.Size), Timestamp: oslo.FormatTimestamp(time.Now()),
	})
	if err != nil {
		return err
	}
	msg := amqp.Publishing{ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: amqp.Persistent, Body: body}

	f := newNotifyFlow(m, lim.Messages)
	lctx, stopListener := context.WithCancel(ctx)
	listening := make(chan struct{})
	defer func() { stopListener(); <-listening }()
	go func() {
		defer close(listening)
		for {
			d, err := next(lctx, deliveries)
			if err == nil {
				f.received()
				err = d.Ack(false)
			}
			if err != nil {
				if lctx.Err() == nil {
					f.fail(err)
				}
				return
			}
		}
	}()
	return measureNotifications(ctx, lim, publishers, f, func(ctx context.Context) error {
		return send(ctx, key, msg)
	})
}

// declareNotifyTopology declares, on a channel of conn, what a notifier
// and a listener with a pool declare with oslo's defaults: the topic
// exchange, the notifier's queue key and the pool's queue, both bound to
// it with key. It returns the function that deletes them.
func declareNotifyTopology(conn *amqp.Connection, exchange, key, pool string) (deleteAll func() error, err error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	defer ch.Close()
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, false, false, false, false, nil); err != nil {
		return nil, fmt.Errorf("declare exchange %s: %w", exchange, err)
	}
	deleteExchange := func() error {
		ch, err := conn.Channel()
		if err != nil {
			return fmt.Errorf("delete exchange %s: %w", exchange, err)
		}
		defer ch.Close()
		if err := ch.ExchangeDelete(exchange, false, false); err != nil {
			return fmt.Errorf("delete exchange %s: %w", exchange, err)
		}
		return nil
	}
	deletes := []func() error{deleteExchange}
	deleteAll = func() error {
		var errs []error
		for i := len(deletes) - 1; i >= 0; i-- {
			errs = append(errs, deletes[i]())
		}
		return errors.Join(errs...)
	}
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
