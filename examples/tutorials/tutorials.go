// Package tutorials is RabbitMQ's five tutorials (https://www.rabbitmq.com/tutorials)
// written on Switchyard's portable model, so that they run unchanged on every
// backend: hello world, work queues, publish/subscribe, routing and topics.
//
// They are ports of the tutorials' Python (pika) programs, which testdata/
// holds. Each declares what its original declares: the same queue and
// exchange names, kinds and flags, and no arguments the original does not
// set. It publishes with the same properties (none, but new_task's
// persistence) and prints the same lines, so
// that on RabbitMQ a pika program and a Go one share queues and exchanges
// both ways; TestCrossLanguage runs each tutorial across the two
// languages. The originals' "hello" and "task_queue" are durable quorum
// queues: so are these where the backend has quorum queues
// (transport.CapQuorumQueue), plain durable queues where it has durability
// (transport.CapDurable), and plain queues on zmq://, which keeps nothing
// past a message's sender (there new_task's messages are not persistent
// either: the transport refuses what it cannot honour). Their
// exchanges have pika's defaults: not
// durable, not auto-delete. Their server-named queues are exclusive and
// classic, as here, where the rabbit driver names them switchyard.gen-...
// rather than the broker's amq.gen-... (no other program uses them).
//
// Each program of the originals is a function here that takes a context, an
// open *transport.Transport, its arguments and an io.Writer for what the
// program prints. The commands under cmd/ (send, receive, new_task, worker,
// emit_log, receive_logs, emit_log_direct, receive_logs_direct,
// emit_log_topic, receive_logs_topic) wrap them one per process, and
// `go run ./examples/switchyard tour` runs them all in one process.
//
// Producers declare what they publish to, publish once and return.
// Receivers declare their queue and bindings, then print each message until
// their context ends (they return nil then: that is how they are stopped)
// or, when RunOptions.Limit is set, until they have handled that many.
package tutorials

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/worker"
)

// The queues and exchanges the tutorials use, named as in the originals.
const (
	// HelloQueue is tutorial 1's queue.
	HelloQueue = "hello"
	// TaskQueue is tutorial 2's durable work queue.
	TaskQueue = "task_queue"
	// LogsExchange is tutorial 3's fanout exchange.
	LogsExchange = "logs"
	// DirectLogsExchange is tutorial 4's direct exchange.
	DirectLogsExchange = "direct_logs"
	// TopicLogsExchange is tutorial 5's topic exchange.
	TopicLogsExchange = "topic_logs"
)

// RunOptions let the caller of a receiver bound how long it runs and follow
// its progress. The zero value runs until the context ends.
type RunOptions struct {
	// Ready is called once the receiver's queue is declared, bound and
	// being consumed: a message published from then on reaches it.
	Ready func()
	// Received is called with each message's routing key and body as it
	// arrives, before the receiver handles it.
	Received func(routingKey string, body []byte)
	// Handled is called with each message's routing key and body once the
	// receiver has handled it (the worker acknowledges it as its handler
	// returns).
	Handled func(routingKey string, body []byte)
	// Limit stops the receiver after it has handled this many messages;
	// zero means no limit.
	Limit int
}

// helloQueue is tutorial 1's declaration: a durable quorum queue, as the
// original declares it, on a backend that has quorum queues; durable
// elsewhere.
func helloQueue(tr *transport.Transport) transport.Queue { return namedQueue(tr, HelloQueue) }

// taskQueue is tutorial 2's declaration: a durable quorum queue, as the
// original declares it, on a backend that has quorum queues, so that
// queued tasks survive a broker restart; durable, or plain where the
// backend keeps nothing durable, elsewhere.
func taskQueue(tr *transport.Transport) transport.Queue { return namedQueue(tr, TaskQueue) }

// namedQueue is the originals' declaration of "hello" and "task_queue":
// durable, x-queue-type quorum where the backend offers it, so that a
// pika program and a Go one share the queue (a classic queue of the same
// name would be refused, 406).
func namedQueue(tr *transport.Transport, name string) transport.Queue {
	q := transport.Queue{Name: name, Durable: tr.Capabilities().Has(transport.CapDurable)}
	if tr.Capabilities().Has(transport.CapQuorumQueue) {
		q.Type = transport.QuorumQueue
	}
	return q
}

// Send is tutorial 1's send.py: it declares the queue "hello" and publishes
// body to it through the default exchange. It prints " [x] Sent 'BODY'",
// as send.py prints it.
func Send(ctx context.Context, tr *transport.Transport, w io.Writer, body string) error {
	if _, err := tr.DeclareQueue(ctx, helloQueue(tr)); err != nil {
		return err
	}
	err := tr.Publish(ctx, "", HelloQueue, transport.Message{Body: []byte(body)})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, " [x] Sent '%s'\n", body)
	return nil
}

// Receive is tutorial 1's receive.py: it prints the messages of the queue
// "hello", acknowledged automatically as they are delivered.
func Receive(ctx context.Context, tr *transport.Transport, w io.Writer, opts RunOptions) error {
	if _, err := tr.DeclareQueue(ctx, helloQueue(tr)); err != nil {
		return err
	}
	return consume(ctx, tr, HelloQueue, transport.ConsumeOptions{AutoAck: true}, opts,
		func(_ context.Context, d *transport.Delivery) error {
			fmt.Fprintf(w, " [x] Received %s\n", d.Body)
			return nil
		})
}

// NewTask is tutorial 2's new_task.py: it publishes body as a persistent
// message (where the backend keeps messages: transport.CapDurable) to the
// durable queue "task_queue". Each dot in body stands for a unit of work.
func NewTask(ctx context.Context, tr *transport.Transport, w io.Writer, body string) error {
	if _, err := tr.DeclareQueue(ctx, taskQueue(tr)); err != nil {
		return err
	}
	err := tr.Publish(ctx, "", TaskQueue, transport.Message{Persistent: tr.Capabilities().Has(transport.CapDurable), Body: []byte(body)})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, " [x] Sent %s\n", body)
	return nil
}

// Worker is tutorial 2's worker.py: it takes tasks from "task_queue" one at
// a time (prefetch 1, so that a busy worker is not handed more while others
// are idle), works workPerDot for every dot in the task (the original's one
// second), and acknowledges the task once done. A task interrupted by the
// context's end is not acknowledged: it returns to the queue for another
// worker, so nothing is lost.
//
// It is a handler for worker.Run (package transport/worker), which does
// the original's basic_qos, basic_consume and basic_ack: the handler
// returns nil once the task is done, and the worker acknowledges it.
func Worker(ctx context.Context, tr *transport.Transport, w io.Writer, workPerDot time.Duration, opts RunOptions) error {
	if workPerDot < 0 {
		return fmt.Errorf("%w: negative work per dot %v", transport.ErrInvalid, workPerDot)
	}
	if _, err := tr.DeclareQueue(ctx, taskQueue(tr)); err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	handled := 0 // one handler at a time: no lock
	doTask := func(ctx context.Context, d *transport.Delivery) error {
		if opts.Received != nil {
			opts.Received(d.RoutingKey, d.Body)
		}
		fmt.Fprintf(w, " [x] Received %s\n", d.Body)
		work := time.NewTimer(time.Duration(bytes.Count(d.Body, []byte("."))) * workPerDot)
		defer work.Stop()
		select {
		case <-work.C:
		case <-ctx.Done():
			return ctx.Err() // not done: the worker requeues the task
		}
		fmt.Fprintln(w, " [x] Done")
		if opts.Handled != nil {
			opts.Handled(d.RoutingKey, d.Body)
		}
		if handled++; handled == opts.Limit {
			stop() // the worker acknowledges this task, then returns
		}
		return nil
	}
	return worker.Run(runCtx, tr, TaskQueue, doTask,
		worker.WithConsumeOptions(transport.ConsumeOptions{Prefetch: 1}),
		// Stopped, the worker drops its task at once, as worker.py does on
		// Ctrl+C: the task goes back to the queue.
		worker.WithGracePeriod(0),
		worker.WithReady(opts.Ready))
}

// EmitLog is tutorial 3's emit_log.py: it publishes body to the fanout
// exchange "logs", which copies it to every queue bound to it.
func EmitLog(ctx context.Context, tr *transport.Transport, w io.Writer, body string) error {
	if err := emit(ctx, tr, transport.Fanout, LogsExchange, "", body); err != nil {
		return err
	}
	fmt.Fprintf(w, " [x] Sent %s\n", body)
	return nil
}

// ReceiveLogs is tutorial 3's receive_logs.py: it binds a server-named,
// exclusive queue of its own to the fanout exchange "logs" and prints every
// log, from the moment it is bound.
func ReceiveLogs(ctx context.Context, tr *transport.Transport, w io.Writer, opts RunOptions) error {
	return receiveLogs(ctx, tr, transport.Fanout, LogsExchange, []string{""}, opts,
		func(_ context.Context, d *transport.Delivery) error {
			fmt.Fprintf(w, " [x] %s\n", d.Body)
			return nil
		})
}

// EmitLogDirect is tutorial 4's emit_log_direct.py: it publishes body to
// the direct exchange "direct_logs" with the severity as routing key.
func EmitLogDirect(ctx context.Context, tr *transport.Transport, w io.Writer, severity, body string) error {
	if err := emit(ctx, tr, transport.Direct, DirectLogsExchange, severity, body); err != nil {
		return err
	}
	fmt.Fprintf(w, " [x] Sent %s:%s\n", severity, body)
	return nil
}

// ReceiveLogsDirect is tutorial 4's receive_logs_direct.py: it binds a
// server-named, exclusive queue to "direct_logs" once per severity and
// prints the logs of those severities. At least one severity is required
// (ErrInvalid otherwise).
func ReceiveLogsDirect(ctx context.Context, tr *transport.Transport, w io.Writer, severities []string, opts RunOptions) error {
	if len(severities) == 0 {
		return fmt.Errorf("%w: receive_logs_direct needs at least one severity", transport.ErrInvalid)
	}
	return receiveLogs(ctx, tr, transport.Direct, DirectLogsExchange, severities, opts, printKeyAndBody(w))
}

// EmitLogTopic is tutorial 5's emit_log_topic.py: it publishes body to the
// topic exchange "topic_logs" with a routing key such as "kern.critical"
// (<facility>.<severity>).
func EmitLogTopic(ctx context.Context, tr *transport.Transport, w io.Writer, routingKey, body string) error {
	if err := emit(ctx, tr, transport.Topic, TopicLogsExchange, routingKey, body); err != nil {
		return err
	}
	fmt.Fprintf(w, " [x] Sent %s:%s\n", routingKey, body)
	return nil
}

// ReceiveLogsTopic is tutorial 5's receive_logs_topic.py: it binds a
// server-named, exclusive queue to "topic_logs" once per binding key, a
// pattern where `*` stands for exactly one word and `#` for zero or more,
// and prints the logs that match any of them (each log once). At least one
// binding key is required (ErrInvalid otherwise).
func ReceiveLogsTopic(ctx context.Context, tr *transport.Transport, w io.Writer, bindingKeys []string, opts RunOptions) error {
	if len(bindingKeys) == 0 {
		return fmt.Errorf("%w: receive_logs_topic needs at least one binding key", transport.ErrInvalid)
	}
	return receiveLogs(ctx, tr, transport.Topic, TopicLogsExchange, bindingKeys, opts, printKeyAndBody(w))
}

// Reset declares the tutorials' named queues ("hello", "task_queue") and
// drops the messages left in them, so that a run starts from empty queues
// on a broker that other runs have used. It returns how many it dropped.
func Reset(ctx context.Context, tr *transport.Transport) (int, error) {
	dropped := 0
	for _, q := range []transport.Queue{helloQueue(tr), taskQueue(tr)} {
		if _, err := tr.DeclareQueue(ctx, q); err != nil {
			return dropped, err
		}
		n, err := tr.PurgeQueue(ctx, q.Name)
		dropped += n
		if err != nil {
			return dropped, err
		}
	}
	return dropped, nil
}

// printKeyAndBody prints a log as the originals of tutorials 4 and 5 do:
// its routing key, then its body.
func printKeyAndBody(w io.Writer) func(context.Context, *transport.Delivery) error {
	return func(_ context.Context, d *transport.Delivery) error {
		fmt.Fprintf(w, " [x] %s:%s\n", d.RoutingKey, d.Body)
		return nil
	}
}

// declareLogs declares a logs exchange as the originals do, with pika's
// exchange_declare defaults: not durable, not auto-delete, no arguments.
// A durable one would be refused (406 PRECONDITION_FAILED) by RabbitMQ
// where a pika program declared it first, and the other way round.
func declareLogs(ctx context.Context, tr *transport.Transport, kind transport.ExchangeKind, exchange string) error {
	return tr.DeclareExchange(ctx, transport.Exchange{Name: exchange, Kind: kind})
}

func emit(ctx context.Context, tr *transport.Transport, kind transport.ExchangeKind, exchange, key, body string) error {
	if err := declareLogs(ctx, tr, kind, exchange); err != nil {
		return err
	}
	return tr.Publish(ctx, exchange, key, transport.Message{Body: []byte(body)})
}

// receiveLogs is the receiver of tutorials 3 to 5: a server-named,
// exclusive queue bound to exchange once per key, consumed with auto-ack.
func receiveLogs(ctx context.Context, tr *transport.Transport, kind transport.ExchangeKind, exchange string,
	keys []string, opts RunOptions, handle func(context.Context, *transport.Delivery) error) (err error) {
	if err := declareLogs(ctx, tr, kind, exchange); err != nil {
		return err
	}
	queue, err := tr.DeclareQueue(ctx, transport.Queue{Exclusive: true})
	if err != nil {
		return err
	}
	// The originals leave the queue to go with their connection; here the
	// transport may outlive the receiver (the tour), so delete it, even
	// when ctx has ended.
	defer func() {
		cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, derr := tr.DeleteQueue(cleanup, queue); derr != nil && !errors.Is(derr, transport.ErrClosed) {
			err = errors.Join(err, derr)
		}
	}()
	for _, key := range keys {
		if err := tr.Bind(ctx, transport.Binding{Exchange: exchange, Queue: queue, Key: key}); err != nil {
			return err
		}
	}
	return consume(ctx, tr, queue, transport.ConsumeOptions{AutoAck: true}, opts, handle)
}

// consume runs a receiver's loop on queue: it calls handle for each
// delivery (handle prints it and, unless auto-ack, settles it) until ctx
// ends or opts.Limit deliveries were handled. The end of ctx is a clean
// stop and returns nil.
func consume(ctx context.Context, tr *transport.Transport, queue string, copts transport.ConsumeOptions, opts RunOptions,
	handle func(context.Context, *transport.Delivery) error) (err error) {
	c, err := tr.Consume(ctx, queue, copts)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := c.Close(); cerr != nil && !errors.Is(cerr, transport.ErrClosed) {
			err = errors.Join(err, cerr)
		}
	}()
	if opts.Ready != nil {
		opts.Ready()
	}
	for n := 0; opts.Limit == 0 || n < opts.Limit; n++ {
		d, err := c.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if opts.Received != nil {
			opts.Received(d.RoutingKey, d.Body)
		}
		if err := handle(ctx, d); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if opts.Handled != nil {
			opts.Handled(d.RoutingKey, d.Body)
		}
	}
	return nil
}
