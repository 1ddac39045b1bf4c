package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/switchyard-mq/switchyard/internal/oslo"
	"github.com/switchyard-mq/switchyard/transport"
)

// stringList collects a repeated flag.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// listenOptions are listen's flags.
type listenOptions struct {
	backend  backendFlags
	exchange string
	keys     stringList
	declare  string
	queue    string
	count    int
	raw      bool
}

func listenCommand() command {
	return command{
		name:    "listen",
		summary: "bind a queue to an exchange and print what arrives, decoding oslo messages",
		args:    "",
		doc: `Declares a server-named queue of its own (exclusive, deleted when listen
stops), binds it to -exchange with each -key pattern (topic exchanges: *
is one word, # any number), and prints every message that arrives until
interrupted or -count messages. oslo.messaging messages are decoded: RPC
requests show their method, arguments and context, replies their result or
failure, notifications their priority, event type and payload; anything
else is shown raw. With -queue it consumes an existing queue instead,
taking its messages from their other consumers.

  switchyard listen -url rabbit://guest:guest@127.0.0.1:5672/ -exchange nova -key 'compute.#'
  switchyard listen -exchange openstack -key 'notifications.*'`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string, io.Writer) error {
			var o listenOptions
			o.backend.register(fs)
			fs.StringVar(&o.exchange, "exchange", "", "`exchange` to bind to (default: the control exchange, openstack unless configured)")
			fs.Var(&o.keys, "key", "binding `pattern` (repeatable; default #, everything)")
			fs.StringVar(&o.declare, "declare", "", "declare the exchange first, of this `kind` (direct, fanout, topic)")
			fs.StringVar(&o.queue, "queue", "", "consume this existing `queue` instead of binding one")
			fs.IntVar(&o.count, "count", 0, "stop after this many `messages` (0: when interrupted)")
			fs.BoolVar(&o.raw, "raw", false, "print bodies as they are, without decoding oslo messages")
			return func(ctx context.Context, args []string, stdout io.Writer) error {
				switch {
				case len(args) > 0:
					return fmt.Errorf("%w: unexpected arguments %q", errUsage, args)
				case o.count < 0:
					return fmt.Errorf("%w: -count %d is negative", errUsage, o.count)
				case o.queue != "" && (o.exchange != "" || len(o.keys) > 0 || o.declare != ""):
					return fmt.Errorf("%w: -queue cannot be combined with -exchange, -key or -declare", errUsage)
				case o.declare != "" && !transport.ExchangeKind(o.declare).Valid():
					return fmt.Errorf("%w: -declare %q: want direct, fanout or topic", errUsage, o.declare)
				}
				if len(o.keys) == 0 {
					o.keys = stringList{"#"}
				}
				return listen(ctx, stdout, o)
			}
		},
	}
}

func listen(ctx context.Context, stdout io.Writer, o listenOptions) (err error) {
	cfg, err := o.backend.load(nil)
	if err != nil {
		return err
	}
	tr, err := o.backend.open(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, tr.Close()) }()

	queue := o.queue
	if queue == "" {
		exchange := o.exchange
		if exchange == "" {
			exchange = cfg.ControlExchange
		}
		if o.declare != "" {
			if err := tr.DeclareExchange(ctx, transport.Exchange{Name: exchange, Kind: transport.ExchangeKind(o.declare)}); err != nil {
				return err
			}
		}
		if queue, err = declareOwnQueue(ctx, tr); err != nil {
			return err
		}
		// The queue is this command's alone: delete it when done, on
		// backends that would not (no auto-delete or exclusive queues).
		defer func() {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if _, derr := tr.DeleteQueue(dctx, queue); derr != nil {
				err = errors.Join(err, derr)
			}
		}()
		for _, key := range o.keys {
			if err := tr.Bind(ctx, transport.Binding{Exchange: exchange, Queue: queue, Key: key}); err != nil {
				if errors.Is(err, transport.ErrNotFound) {
					err = fmt.Errorf("%w (declare it with -declare topic, or choose another -exchange)", err)
				}
				return err
			}
		}
		fmt.Fprintf(stdout, "listening on %s: exchange %q, keys %s, queue %q\n", tr, exchange, strings.Join(o.keys, " "), queue)
	} else {
		fmt.Fprintf(stdout, "listening on %s: queue %q\n", tr, queue)
	}
	consumer, err := tr.Consume(ctx, queue, transport.ConsumeOptions{})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, consumer.Close()) }()
	for n := 1; o.count == 0 || n <= o.count; n++ {
		d, err := consumer.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil // interrupted: the normal end
			}
			return err
		}
		printDelivery(stdout, n, d, o.raw)
		if err := d.Ack(); err != nil {
			return err
		}
	}
	return nil
}

// declareOwnQueue declares a queue for listen alone: server-named,
// exclusive and auto-delete where the backend has them, otherwise named
// here.
func declareOwnQueue(ctx context.Context, tr *transport.Transport) (string, error) {
	caps := tr.Capabilities()
	q := transport.Queue{
		Exclusive:  caps.Has(transport.CapExclusiveQueue),
		AutoDelete: caps.Has(transport.CapAutoDelete),
	}
	if !caps.Has(transport.CapServerNamedQueue) {
		b := make([]byte, 8)
		_, _ = rand.Read(b)
		q.Name = "switchyard.listen-" + hex.EncodeToString(b)
	}
	return tr.DeclareQueue(ctx, q)
}

// printDelivery writes one message, decoded where it is oslo's.
func printDelivery(w io.Writer, n int, d *transport.Delivery, raw bool) {
	redelivered := ""
	if d.Redelivered {
		redelivered = " (redelivered)"
	}
	fmt.Fprintf(w, "[%d] exchange %q key %q%s\n", n, d.Exchange, d.RoutingKey, redelivered)
	if !raw && describeOslo(w, d.Body) {
		return
	}
	contentType := d.ContentType
	if contentType == "" {
		contentType = "no content type"
	}
	fmt.Fprintf(w, "  body (%s, %d bytes): %s\n", contentType, len(d.Body), printable(d.Body))
	for _, k := range slices.Sorted(maps.Keys(d.Headers)) {
		fmt.Fprintf(w, "  header %s: %v\n", k, d.Headers[k])
	}
}

// printable shows a body as text if it is, quoted otherwise.
func printable(b []byte) string {
	s := string(b)
	if utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' }) {
		return s
	}
	return fmt.Sprintf("%q", s)
}

// describeOslo writes an oslo.messaging request, reply or notification
// readably, and reports whether body was one.
func describeOslo(w io.Writer, body []byte) bool {
	var outer map[string]json.RawMessage
	if json.Unmarshal(body, &outer) != nil {
		return false
	}
	msg, err := oslo.Unwrap(body)
	if err != nil {
		return false
	}
	format := "1.0"
	if _, ok := outer["oslo.version"]; ok {
		format = "2.0"
	}
	var keys map[string]json.RawMessage
	if json.Unmarshal(msg, &keys) != nil {
		return false
	}
	has := func(k string) bool { _, ok := keys[k]; return ok }
	switch {
	case has("method"):
		req, err := oslo.DecodeRequest(msg)
		if err != nil {
			return false
		}
		kind := "cast"
		if req.IsCall() {
			kind = "call"
		}
		fmt.Fprintf(w, "  oslo %s %s (format %s)", kind, req.Method, format)
		if req.Namespace != "" {
			fmt.Fprintf(w, " namespace %s", req.Namespace)
		}
		if req.Version != "" {
			fmt.Fprintf(w, " version %s", req.Version)
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "    args: %s\n", compactJSON(req.Args))
		if len(req.Context) > 0 {
			ctx, _ := json.Marshal(req.Context)
			fmt.Fprintf(w, "    context: %s\n", ctx)
		}
		if req.IsCall() {
			timeout := "none"
			if req.Timeout != nil {
				timeout = fmt.Sprintf("%gs", *req.Timeout)
			}
			fmt.Fprintf(w, "    msg_id %s, reply to %s, call monitor %s\n", req.MsgID, req.ReplyQ, timeout)
		}
	case has("event_type") && has("priority"):
		note, err := oslo.DecodeNotification(msg)
		if err != nil {
			return false
		}
		fmt.Fprintf(w, "  oslo notification %s %s from %s (format %s)\n", strings.ToUpper(string(note.Priority)), note.EventType, note.PublisherID, format)
		payload := "null"
		if note.Payload != nil {
			payload = compactJSON(note.Payload)
		}
		fmt.Fprintf(w, "    payload: %s\n", payload)
		if len(note.Context) > 0 {
			ctx, _ := json.Marshal(note.Context)
			fmt.Fprintf(w, "    context: %s\n", ctx)
		}
		fmt.Fprintf(w, "    message_id %s, timestamp %s\n", note.MessageID, note.Timestamp)
	case has("_msg_id") && (has("result") || has("failure") || has("ending")):
		reply, err := oslo.DecodeReply(msg)
		if err != nil {
			return false
		}
		what := "reply"
		switch {
		case reply.IsHeartbeat():
			what = "heartbeat"
		case !reply.Ending:
			what = "reply (more to come)"
		}
		fmt.Fprintf(w, "  oslo %s to msg_id %s (format %s)\n", what, reply.MsgID, format)
		if reply.Failure != nil {
			fmt.Fprintf(w, "    failure: %s.%s: %s\n", reply.Failure.Module, reply.Failure.Class, reply.Failure.Message)
		} else if !reply.IsHeartbeat() {
			result := "null"
			if reply.Result != nil {
				result = compactJSON(reply.Result)
			}
			fmt.Fprintf(w, "    result: %s\n", result)
		}
	default:
		return false
	}
	return true
}
