package memory

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchyard-mq/switchyard/drivers/memory/internal/amqp091"
	"github.com/switchyard-mq/switchyard/transport/driver"
)

// serverChannel is one open channel of a client connection. Its fields
// above mu belong to the connection's reading goroutine.
type serverChannel struct {
	c  *serverConn
	id uint16

	closing   bool // the server sent channel.close and awaits close-ok
	lastQueue string
	prefetch  int // basic.qos for consumers started from now on
	confirm   bool
	seq       uint64 // publishes since confirm.select

	// The publish being assembled from its content frames.
	publish  *amqp091.BasicPublish
	header   *amqp091.ContentHeader
	body     []byte
	expected uint64

	mu        sync.Mutex
	consumers map[string]*serverConsumer
	nextTag   uint64
	unacked   []pendingDelivery // by tag, ascending
	global    int               // basic.qos global: the channel's bound on unacked; 0 none
	inflight  int               // unacked deliveries counted against global
	credit    chan struct{}     // closed and replaced when inflight drops
}

// serverConsumer is one basic.consume.
type serverConsumer struct {
	tag   string
	cons  *consumer
	noAck bool
	stop  context.CancelFunc
	done  chan struct{} // closed when its goroutine ends
	queue string
}

// pendingDelivery is an unacknowledged delivery of the channel: from a
// consumer (cons, by the consumer's own tag) or from basic.get (q, e).
type pendingDelivery struct {
	tag     uint64
	cons    *consumer
	consTag uint64
	q       *queue
	e       entry
	counted bool // against the global prefetch
}

func newServerChannel(c *serverConn, id uint16) *serverChannel {
	return &serverChannel{c: c, id: id, consumers: map[string]*serverConsumer{}, credit: make(chan struct{})}
}

// vhost names where things are, as RabbitMQ's texts do.
const vhost = "vhost '/'"

// frame runs one frame on the channel and reports whether the channel is
// now closed and forgotten.
func (ch *serverChannel) frame(ctx context.Context, f amqp091.Frame) (closed bool, err error) {
	if ch.closing {
		// After channel.close only close-ok, or the client's own close,
		// counts; the rest is dropped, as the specification says.
		if f.Type == amqp091.FrameMethod {
			if m, err := amqp091.DecodeMethod(f.Payload); err == nil {
				switch m.(type) {
				case *amqp091.ChannelCloseOk:
					return true, nil
				case *amqp091.ChannelClose:
					return true, ch.c.sendMethod(ch.id, &amqp091.ChannelCloseOk{})
				}
			}
		}
		return false, nil
	}
	err = ch.dispatch(ctx, f)
	var ae *amqpError
	if errors.As(err, &ae) && !ae.hard {
		ch.c.logger.InfoContext(ctx, "closing AMQP channel", "channel", ch.id, "code", ae.code, "reason", ae.text)
		ch.release()
		ch.closing = true
		return false, ch.c.sendMethod(ch.id, &amqp091.ChannelClose{ReplyCode: ae.code, ReplyText: ae.text, ClassId: ae.class, MethodId: ae.method})
	}
	if errors.Is(err, errChannelClosed) {
		return true, nil
	}
	return false, err
}

// errChannelClosed: the client closed the channel.
var errChannelClosed = errors.New("channel closed by the client")

func (ch *serverChannel) dispatch(ctx context.Context, f amqp091.Frame) error {
	switch f.Type {
	case amqp091.FrameHeader:
		if ch.publish == nil || ch.header != nil {
			return connectionError(replyUnexpectedFrame, nil, "unexpected content header on channel %d", ch.id)
		}
		h, err := amqp091.DecodeContentHeader(f.Payload)
		if err != nil {
			return connectionError(replyFrameError, ch.publish, "cannot decode content header: %v", err)
		}
		if h.Class != amqp091.ClassBasic {
			return connectionError(replyUnexpectedFrame, ch.publish, "content header for class %d, expected %d", h.Class, amqp091.ClassBasic)
		}
		if h.BodySize > uint64(ch.c.s.cfg.MaxMessageSize) {
			return channelError(replyPrecondition, ch.publish, "message size %d is larger than configured max size %d", h.BodySize, ch.c.s.cfg.MaxMessageSize)
		}
		ch.header, ch.expected = &h, h.BodySize
		ch.body = make([]byte, 0, min(h.BodySize, 1<<20))
		if h.BodySize == 0 {
			return ch.finishPublish(ctx)
		}
		return nil
	case amqp091.FrameBody:
		if ch.header == nil {
			return connectionError(replyUnexpectedFrame, nil, "unexpected content body on channel %d", ch.id)
		}
		if uint64(len(ch.body))+uint64(len(f.Payload)) > ch.expected {
			return connectionError(replyFrameError, ch.publish, "content body exceeds the declared size %d", ch.expected)
		}
		ch.body = append(ch.body, f.Payload...)
		if uint64(len(ch.body)) == ch.expected {
			return ch.finishPublish(ctx)
		}
		return nil
	}
	m, err := decodeMethod(f.Payload)
	if err != nil {
		return err
	}
	if ch.publish != nil {
		return connectionError(replyUnexpectedFrame, m, "expected content header for class 60, got non content header frame instead")
	}
	return ch.method(ctx, m)
}

func (ch *serverChannel) reply(nowait bool, m amqp091.Method) error {
	if nowait {
		return nil
	}
	return ch.c.sendMethod(ch.id, m)
}

func (ch *serverChannel) method(ctx context.Context, m amqp091.Method) error {
	b := ch.c.s.b
	switch m := m.(type) {
	case *amqp091.ChannelClose:
		ch.release()
		if err := ch.c.sendMethod(ch.id, &amqp091.ChannelCloseOk{}); err != nil {
			return err
		}
		return errChannelClosed
	case *amqp091.ChannelCloseOk:
		return nil
	case *amqp091.ChannelOpen:
		return connectionError(replyChannelError, m, "second 'channel.open' seen")
	case *amqp091.ChannelFlow:
		if !m.Active {
			return channelError(replyNotImplemented, m, "active=false")
		}
		return ch.c.sendMethod(ch.id, &amqp091.ChannelFlowOk{Active: true})
	case *amqp091.ChannelFlowOk:
		return nil

	case *amqp091.ExchangeDeclare:
		return ch.exchangeDeclare(m)
	case *amqp091.ExchangeDelete:
		return ch.exchangeDelete(m)
	case *amqp091.ExchangeBind, *amqp091.ExchangeUnbind:
		return connectionError(replyNotImplemented, m, "exchange-to-exchange bindings are not supported by this broker")

	case *amqp091.QueueDeclare:
		return ch.queueDeclare(m)
	case *amqp091.QueueBind:
		return ch.queueBind(m)
	case *amqp091.QueueUnbind:
		return ch.queueUnbind(m)
	case *amqp091.QueuePurge:
		q, err := ch.queue(m, m.Queue)
		if err != nil {
			return err
		}
		return ch.reply(m.Nowait, &amqp091.QueuePurgeOk{MessageCount: uint32(q.purge())})
	case *amqp091.QueueDelete:
		return ch.queueDelete(m)

	case *amqp091.BasicQos:
		if m.PrefetchSize != 0 {
			return channelError(replyNotImplemented, m, "prefetch_size!=0 (%d)", m.PrefetchSize)
		}
		if m.Global {
			ch.mu.Lock()
			ch.global = int(m.PrefetchCount)
			ch.signalCreditLocked()
			ch.mu.Unlock()
		} else {
			ch.prefetch = int(m.PrefetchCount)
		}
		return ch.c.sendMethod(ch.id, &amqp091.BasicQosOk{})
	case *amqp091.BasicConsume:
		return ch.consume(ctx, m)
	case *amqp091.BasicCancel:
		ch.cancel(m.ConsumerTag)
		return ch.reply(m.Nowait, &amqp091.BasicCancelOk{ConsumerTag: m.ConsumerTag})
	case *amqp091.BasicPublish:
		if err := ch.c.waitFlow(ctx); err != nil {
			return err
		}
		if m.Immediate {
			return connectionError(replyNotImplemented, m, "immediate=true")
		}
		if m.Exchange != "" {
			b.mu.RLock()
			_, ok := b.exchanges[m.Exchange]
			b.mu.RUnlock()
			if !ok {
				return channelError(replyNotFound, m, "no exchange '%s' in %s", m.Exchange, vhost)
			}
		}
		ch.publish = m
		return nil
	case *amqp091.BasicGet:
		return ch.get(m)
	case *amqp091.BasicAck:
		return ch.settle(m, m.DeliveryTag, m.Multiple, settleAck)
	case *amqp091.BasicNack:
		action := settleDrop
		if m.Requeue {
			action = settleRequeue
		}
		return ch.settle(m, m.DeliveryTag, m.Multiple, action)
	case *amqp091.BasicReject:
		action := settleDrop
		if m.Requeue {
			action = settleRequeue
		}
		return ch.settle(m, m.DeliveryTag, false, action)
	case *amqp091.BasicRecover:
		if !m.Requeue {
			return channelError(replyNotImplemented, m, "requeue=false")
		}
		if err := ch.settle(m, 0, true, settleRequeue); err != nil {
			return err
		}
		return ch.c.sendMethod(ch.id, &amqp091.BasicRecoverOk{})
	case *amqp091.BasicRecoverAsync:
		if !m.Requeue {
			return channelError(replyNotImplemented, m, "requeue=false")
		}
		return ch.settle(m, 0, true, settleRequeue)

	case *amqp091.ConfirmSelect:
		ch.confirm = true
		return ch.reply(m.Nowait, &amqp091.ConfirmSelectOk{})
	case *amqp091.TxSelect, *amqp091.TxCommit, *amqp091.TxRollback:
		return channelError(replyNotImplemented, m, "transactions are not supported by this broker")
	case *amqp091.AccessRequest:
		return ch.c.sendMethod(ch.id, &amqp091.AccessRequestOk{Ticket: 1})
	}
	if strings.HasPrefix(m.Name(), "connection.") {
		return connectionError(replyCommandInvalid, m, "method '%s' on channel %d", m.Name(), ch.id)
	}
	return connectionError(replyCommandInvalid, m, "a client does not send '%s'", m.Name())
}

// queueName resolves the empty name to the channel's last declared queue,
// as RabbitMQ does.
func (ch *serverChannel) queueName(m amqp091.Method, name string) (string, error) {
	if name != "" {
		return name, nil
	}
	if ch.lastQueue == "" {
		return "", connectionError(replyNotAllowed, m, "no previously declared queue")
	}
	return ch.lastQueue, nil
}

// queue looks up a queue the connection may use.
func (ch *serverChannel) queue(m amqp091.Method, name string) (*queue, error) {
	name, err := ch.queueName(m, name)
	if err != nil {
		return nil, err
	}
	q, err := ch.c.s.b.lookupQueue(name, ch.c.mc)
	switch {
	case errors.Is(err, driver.ErrNotFound):
		return nil, channelError(replyNotFound, m, "no queue '%s' in %s", name, vhost)
	case errors.Is(err, driver.ErrInUse):
		return nil, channelError(replyResourceLocked, m, "cannot obtain exclusive access to locked queue '%s' in %s. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.", name, vhost)
	case err != nil:
		return nil, channelError(replyInternalError, m, "%v", err)
	}
	return q, nil
}

func (ch *serverChannel) exchangeDeclare(m *amqp091.ExchangeDeclare) error {
	b := ch.c.s.b
	if m.Exchange == "" {
		return channelError(replyAccessRefused, m, "operation not permitted on the default exchange")
	}
	b.mu.RLock()
	cur, ok := b.exchanges[m.Exchange]
	b.mu.RUnlock()
	if m.Passive {
		if !ok {
			return channelError(replyNotFound, m, "no exchange '%s' in %s", m.Exchange, vhost)
		}
		return ch.reply(m.Nowait, &amqp091.ExchangeDeclareOk{})
	}
	kind := driver.ExchangeKind(m.Type)
	switch {
	case m.Type == "headers":
		return connectionError(replyNotImplemented, m, "exchange type 'headers' is not supported by this broker")
	case !kind.Valid():
		return connectionError(replyCommandInvalid, m, "invalid exchange type '%s'", m.Type)
	case m.Internal:
		return channelError(replyNotImplemented, m, "internal exchanges are not supported by this broker")
	case m.Arguments["alternate-exchange"] != nil:
		return channelError(replyNotImplemented, m, "alternate exchanges are not supported by this broker")
	}
	decl := driver.Exchange{Name: m.Exchange, Kind: kind, Durable: m.Durable, AutoDelete: m.AutoDelete}
	if ok {
		if err := inequivalentExchange(m, cur.decl, decl); err != nil {
			return err
		}
		return ch.reply(m.Nowait, &amqp091.ExchangeDeclareOk{})
	}
	if strings.HasPrefix(m.Exchange, "amq.") {
		return channelError(replyAccessRefused, m, "exchange name '%s' contains reserved prefix 'amq.*'", m.Exchange)
	}
	if err := b.declareExchange(decl); err != nil {
		b.mu.RLock()
		cur, ok := b.exchanges[m.Exchange]
		b.mu.RUnlock()
		if ok {
			if err := inequivalentExchange(m, cur.decl, decl); err != nil {
				return err
			}
		}
		return channelError(replyPrecondition, m, "%v", err)
	}
	return ch.reply(m.Nowait, &amqp091.ExchangeDeclareOk{})
}

func inequivalentExchange(m amqp091.Method, cur, decl driver.Exchange) error {
	diff := func(arg string, received, current any) error {
		return channelError(replyPrecondition, m, "inequivalent arg '%s' for exchange '%s' in %s: received '%v' but current is '%v'", arg, decl.Name, vhost, received, current)
	}
	switch {
	case cur.Kind != decl.Kind:
		return diff("type", decl.Kind, cur.Kind)
	case cur.Durable != decl.Durable:
		return diff("durable", decl.Durable, cur.Durable)
	case cur.AutoDelete != decl.AutoDelete:
		return diff("auto_delete", decl.AutoDelete, cur.AutoDelete)
	}
	return nil
}

func (ch *serverChannel) exchangeDelete(m *amqp091.ExchangeDelete) error {
	b := ch.c.s.b
	switch {
	case m.Exchange == "":
		return channelError(replyAccessRefused, m, "operation not permitted on the default exchange")
	case strings.HasPrefix(m.Exchange, "amq."):
		return channelError(replyAccessRefused, m, "deletion of system exchange '%s' in %s refused", m.Exchange, vhost)
	}
	b.mu.Lock()
	if _, ok := b.exchanges[m.Exchange]; ok {
		if m.IfUnused && b.routes.HasBindings(m.Exchange) {
			b.mu.Unlock()
			return channelError(replyPrecondition, m, "exchange '%s' in %s in use", m.Exchange, vhost)
		}
		delete(b.exchanges, m.Exchange)
		b.routes.DeleteExchange(m.Exchange)
	}
	b.mu.Unlock()
	return ch.reply(m.Nowait, &amqp091.ExchangeDeleteOk{})
}

func (ch *serverChannel) queueDeclare(m *amqp091.QueueDeclare) error {
	b := ch.c.s.b
	if m.Passive {
		q, err := ch.queue(m, m.Queue)
		if err != nil {
			return err
		}
		q.touch()
		ready, consumers := q.counts()
		ch.lastQueue = q.decl.Name
		return ch.reply(m.Nowait, &amqp091.QueueDeclareOk{Queue: q.decl.Name, MessageCount: uint32(ready), ConsumerCount: uint32(consumers)})
	}
	if strings.HasPrefix(m.Queue, "amq.") {
		return channelError(replyAccessRefused, m, "queue name '%s' contains reserved prefix 'amq.*'", m.Queue)
	}
	decl, err := queueDeclFromAMQP(m)
	if err != nil {
		return err
	}
	if m.Queue != "" {
		b.mu.RLock()
		cur := b.queues[m.Queue]
		b.mu.RUnlock()
		if cur != nil {
			if (cur.owner != nil && cur.owner != ch.c.mc) || cur.decl.Exclusive != decl.Exclusive {
				_, err := ch.queue(m, m.Queue)
				if err == nil {
					err = channelError(replyResourceLocked, m, "cannot obtain exclusive access to locked queue '%s' in %s. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.", m.Queue, vhost)
				}
				return err
			}
			if err := inequivalentQueue(m, cur.decl, decl); err != nil {
				return err
			}
		}
	}
	name, err := b.declareQueue(decl, ch.c.mc)
	switch {
	case errors.Is(err, driver.ErrInUse):
		return channelError(replyResourceLocked, m, "cannot obtain exclusive access to locked queue '%s' in %s", m.Queue, vhost)
	case errors.Is(err, driver.ErrPrecondition):
		return channelError(replyPrecondition, m, "%v", err)
	case err != nil:
		return connectionError(replyInternalError, m, "%v", err)
	}
	ch.lastQueue = name
	q, err := ch.queue(m, name)
	if err != nil {
		return err
	}
	ready, consumers := q.counts()
	return ch.reply(m.Nowait, &amqp091.QueueDeclareOk{Queue: name, MessageCount: uint32(ready), ConsumerCount: uint32(consumers)})
}

// queueDeclFromAMQP reads queue.declare into the model: the arguments it
// has are declared, those RabbitMQ has and it cannot honour refused with
// 540 NOT_IMPLEMENTED, and unknown ones ignored, as RabbitMQ ignores them.
func queueDeclFromAMQP(m *amqp091.QueueDeclare) (driver.Queue, error) {
	decl := driver.Queue{Name: m.Queue, Durable: m.Durable, Exclusive: m.Exclusive, AutoDelete: m.AutoDelete}
	invalid := func(arg, reason string, v any) error {
		return channelError(replyPrecondition, m, "invalid arg '%s' for queue '%s' in %s: {%s,%v}", arg, m.Queue, vhost, reason, v)
	}
	integer := func(arg string, min int64) (int64, error) {
		v := m.Arguments[arg]
		var n int64
		switch x := v.(type) {
		case int8:
			n = int64(x)
		case uint8:
			n = int64(x)
		case int16:
			n = int64(x)
		case uint16:
			n = int64(x)
		case int32:
			n = int64(x)
		case uint32:
			n = int64(x)
		case int64:
			n = x
		default:
			return 0, invalid(arg, "unacceptable_type", fmt.Sprintf("%T", v))
		}
		switch {
		case n < 0:
			return 0, invalid(arg, "value_negative", n)
		case n < min:
			return 0, invalid(arg, "value_zero", n)
		}
		return n, nil
	}
	str := func(arg string) (string, error) {
		switch x := m.Arguments[arg].(type) {
		case string:
			return x, nil
		case []byte:
			return string(x), nil
		}
		return "", invalid(arg, "unacceptable_type", fmt.Sprintf("%T", m.Arguments[arg]))
	}
	for arg := range m.Arguments {
		var err error
		var n int64
		switch arg {
		case "x-message-ttl":
			if n, err = integer(arg, 0); err == nil {
				// The model's zero is no TTL; RabbitMQ's 0 expires a
				// message at once, which a nanosecond does here.
				decl.MessageTTL = max(time.Duration(n)*time.Millisecond, time.Nanosecond)
			}
		case "x-expires":
			if n, err = integer(arg, 1); err == nil {
				decl.Expires = time.Duration(n) * time.Millisecond
			}
		case "x-max-length":
			if n, err = integer(arg, 0); err == nil {
				if n == 0 || n > math.MaxInt32 {
					err = channelError(replyNotImplemented, m, "x-max-length %d is not supported by this broker (1 to %d are)", n, math.MaxInt32)
				}
				decl.MaxLength = int(n)
			}
		case "x-delivery-limit":
			if n, err = integer(arg, 0); err == nil {
				if n > math.MaxInt32 {
					n = math.MaxInt32
				}
				// RabbitMQ's 0 dead-letters at the first return; the
				// model's 0 is no limit.
				if n == 0 {
					err = channelError(replyNotImplemented, m, "x-delivery-limit 0 is not supported by this broker")
				}
				decl.DeliveryLimit = int(n)
			}
		case "x-dead-letter-exchange":
			decl.DeadLetterExchange, err = str(arg)
		case "x-dead-letter-routing-key":
			decl.DeadLetterRoutingKey, err = str(arg)
		case "x-queue-type":
			var t string
			if t, err = str(arg); err == nil {
				switch t {
				case "classic":
				case "quorum":
					// Declared, as on RabbitMQ, and kept in memory like
					// any other queue: this broker is one node.
					decl.Type = driver.QuorumQueue
				case "stream":
					err = channelError(replyNotImplemented, m, "queue type 'stream' is not supported by this broker")
				default:
					err = invalid(arg, "unsupported_queue_type", t)
				}
			}
		case "x-overflow":
			var o string
			if o, err = str(arg); err == nil && o != "drop-head" {
				err = channelError(replyNotImplemented, m, "x-overflow '%s' is not supported by this broker (drop-head is)", o)
			}
		case "x-max-priority", "x-max-length-bytes", "x-single-active-consumer", "x-dead-letter-strategy", "x-message-ttl-on-expiry":
			err = channelError(replyNotImplemented, m, "queue argument '%s' is not supported by this broker", arg)
		}
		if err != nil {
			return driver.Queue{}, err
		}
	}
	if decl.Type == driver.QuorumQueue {
		for _, p := range []struct {
			bad  bool
			name string
		}{{!decl.Durable, "non-durable"}, {decl.Exclusive, "exclusive"}, {decl.AutoDelete, "auto-delete"}} {
			if p.bad {
				return driver.Queue{}, channelError(replyPrecondition, m, "invalid property '%s' for queue '%s' in %s", p.name, m.Queue, vhost)
			}
		}
	}
	if decl.DeadLetterRoutingKey != "" && decl.DeadLetterExchange == "" {
		return driver.Queue{}, channelError(replyPrecondition, m, "invalid arg 'x-dead-letter-routing-key' for queue '%s' in %s: Key x-dead-letter-routing-key requires x-dead-letter-exchange", m.Queue, vhost)
	}
	return decl, nil
}

func inequivalentQueue(m amqp091.Method, cur, decl driver.Queue) error {
	diff := func(arg string, received, current any) error {
		return channelError(replyPrecondition, m, "inequivalent arg '%s' for queue '%s' in %s: received '%v' but current is '%v'", arg, decl.Name, vhost, received, current)
	}
	ms := func(d time.Duration) any {
		if d == 0 {
			return "none"
		}
		return d.Milliseconds()
	}
	switch {
	case cur.Durable != decl.Durable:
		return diff("durable", decl.Durable, cur.Durable)
	case cur.AutoDelete != decl.AutoDelete:
		return diff("auto_delete", decl.AutoDelete, cur.AutoDelete)
	case cur.MessageTTL != decl.MessageTTL:
		return diff("x-message-ttl", ms(decl.MessageTTL), ms(cur.MessageTTL))
	case cur.Expires != decl.Expires:
		return diff("x-expires", ms(decl.Expires), ms(cur.Expires))
	case cur.MaxLength != decl.MaxLength:
		return diff("x-max-length", decl.MaxLength, cur.MaxLength)
	case cur.DeadLetterExchange != decl.DeadLetterExchange:
		return diff("x-dead-letter-exchange", decl.DeadLetterExchange, cur.DeadLetterExchange)
	case cur.DeadLetterRoutingKey != decl.DeadLetterRoutingKey:
		return diff("x-dead-letter-routing-key", decl.DeadLetterRoutingKey, cur.DeadLetterRoutingKey)
	case cur.Type != decl.Type:
		return diff("x-queue-type", typeName(decl.Type), typeName(cur.Type))
	case cur.DeliveryLimit != decl.DeliveryLimit:
		return diff("x-delivery-limit", decl.DeliveryLimit, cur.DeliveryLimit)
	}
	return nil
}

func typeName(t driver.QueueType) driver.QueueType {
	if t == "" {
		return driver.ClassicQueue
	}
	return t
}

func (ch *serverChannel) queueBind(m *amqp091.QueueBind) error {
	if m.Exchange == "" {
		return channelError(replyAccessRefused, m, "operation not permitted on the default exchange")
	}
	q, err := ch.queue(m, m.Queue)
	if err != nil {
		return err
	}
	err = ch.c.s.b.bind(driver.Binding{Exchange: m.Exchange, Queue: q.decl.Name, Key: m.RoutingKey}, ch.c.mc)
	if err != nil {
		return ch.bindingError(m, q.decl.Name, m.Exchange, err)
	}
	return ch.reply(m.Nowait, &amqp091.QueueBindOk{})
}

func (ch *serverChannel) queueUnbind(m *amqp091.QueueUnbind) error {
	if m.Exchange == "" {
		return channelError(replyAccessRefused, m, "operation not permitted on the default exchange")
	}
	q, err := ch.queue(m, m.Queue)
	if err != nil {
		return err
	}
	err = ch.c.s.b.unbind(driver.Binding{Exchange: m.Exchange, Queue: q.decl.Name, Key: m.RoutingKey}, ch.c.mc)
	if err != nil {
		return ch.bindingError(m, q.decl.Name, m.Exchange, err)
	}
	return ch.c.sendMethod(ch.id, &amqp091.QueueUnbindOk{})
}

func (ch *serverChannel) bindingError(m amqp091.Method, queue, exchange string, err error) error {
	b := ch.c.s.b
	b.mu.RLock()
	_, exOK := b.exchanges[exchange]
	_, qOK := b.queues[queue]
	b.mu.RUnlock()
	switch {
	case !exOK:
		return channelError(replyNotFound, m, "no exchange '%s' in %s", exchange, vhost)
	case !qOK:
		return channelError(replyNotFound, m, "no queue '%s' in %s", queue, vhost)
	case errors.Is(err, driver.ErrInUse):
		return channelError(replyResourceLocked, m, "cannot obtain exclusive access to locked queue '%s' in %s", queue, vhost)
	}
	return channelError(replyNotFound, m, "%v", err)
}

func (ch *serverChannel) queueDelete(m *amqp091.QueueDelete) error {
	name, err := ch.queueName(m, m.Queue)
	if err != nil {
		return err
	}
	q, err := ch.queue(m, name)
	var ae *amqpError
	if errors.As(err, &ae) && ae.code == replyNotFound {
		// Deleting a missing queue succeeds, as on RabbitMQ.
		return ch.reply(m.Nowait, &amqp091.QueueDeleteOk{})
	}
	if err != nil {
		return err
	}
	var refused error
	n, deleted := ch.c.s.b.deleteQueue(q, func() bool {
		switch {
		case m.IfUnused && len(q.consumers) > 0:
			refused = channelError(replyPrecondition, m, "queue '%s' in %s in use", name, vhost)
		case m.IfEmpty && q.ready.len() > 0:
			refused = channelError(replyPrecondition, m, "queue '%s' in %s is not empty", name, vhost)
		}
		return refused == nil
	})
	if refused != nil {
		return refused
	}
	if !deleted {
		n = 0
	}
	return ch.reply(m.Nowait, &amqp091.QueueDeleteOk{MessageCount: uint32(n)})
}

func (ch *serverChannel) consume(ctx context.Context, m *amqp091.BasicConsume) error {
	q, err := ch.queue(m, m.Queue)
	if err != nil {
		return err
	}
	tag := m.ConsumerTag
	if tag == "" {
		tag = "amq.ctag-" + randomName()
	}
	ch.mu.Lock()
	_, dup := ch.consumers[tag]
	ch.mu.Unlock()
	if dup {
		return connectionError(replyNotAllowed, m, "attempt to reuse consumer tag '%s'", tag)
	}
	opts := driver.ConsumeOptions{AutoAck: m.NoAck, Exclusive: m.Exclusive}
	if !m.NoAck {
		opts.Prefetch = ch.prefetch
	}
	dc, err := ch.c.mc.Consume(ctx, q.decl.Name, opts)
	switch {
	case errors.Is(err, driver.ErrInUse):
		return channelError(replyAccessRefused, m, "queue '%s' in %s in exclusive use", q.decl.Name, vhost)
	case errors.Is(err, driver.ErrNotFound):
		return channelError(replyNotFound, m, "no queue '%s' in %s", q.decl.Name, vhost)
	case err != nil:
		return connectionError(replyInternalError, m, "%v", err)
	}
	cctx, stop := context.WithCancel(ctx)
	sc := &serverConsumer{tag: tag, cons: dc.(*consumer), noAck: m.NoAck, stop: stop, done: make(chan struct{}), queue: q.decl.Name}
	ch.mu.Lock()
	ch.consumers[tag] = sc
	ch.mu.Unlock()
	if err := ch.reply(m.Nowait, &amqp091.BasicConsumeOk{ConsumerTag: tag}); err != nil {
		stop()
		return err
	}
	go ch.deliverLoop(cctx, sc)
	return nil
}

// deliverLoop sends sc's deliveries until the client cancels it, the
// channel closes, or its queue is deleted (then it tells the client with
// basic.cancel).
func (ch *serverChannel) deliverLoop(ctx context.Context, sc *serverConsumer) {
	defer close(sc.done)
	defer func() {
		if p := recover(); p != nil {
			ch.c.logger.ErrorContext(ctx, "AMQP consumer panicked; closing its connection", "panic", p, "stack", string(debug.Stack()))
			ch.c.abort()
		}
	}()
	type outgoing struct {
		d       driver.Delivery
		m       *message
		counted bool
	}
	var batch []outgoing
	for {
		d, m, err := sc.cons.receive(ctx)
		if err != nil {
			if ctx.Err() == nil {
				ch.serverCancel(sc)
			}
			return
		}
		counted := !sc.noAck && ch.waitCredit(ctx)
		batch = append(batch[:0], outgoing{d, m, counted})
		// What the consumer holds already goes out in the same write,
		// unless the channel's global prefetch counts each one.
		for size := len(m.msg.Body); len(batch) < deliveryBatch && size < deliveryBatchBytes && !ch.globalPrefetch(); {
			d, m, ok := sc.cons.receiveBuffered()
			if !ok {
				break
			}
			batch = append(batch, outgoing{d: d, m: m})
			size += len(m.msg.Body)
		}
		err = ch.c.emit(func(dst []byte) ([]byte, error) {
			for _, o := range batch {
				tag := ch.register(pendingDelivery{cons: sc.cons, consTag: o.d.Tag, counted: o.counted}, !sc.noAck)
				var err error
				dst, err = amqp091.AppendMethodFrame(dst, ch.id, &amqp091.BasicDeliver{
					ConsumerTag: sc.tag, DeliveryTag: tag, Redelivered: o.d.Redelivered, Exchange: o.d.Exchange, RoutingKey: o.d.RoutingKey,
				})
				if err != nil {
					return dst, err
				}
				p := amqpPropertiesOf(o.m)
				if dst, err = amqp091.AppendContent(dst, ch.id, ch.c.frameMax, amqp091.ClassBasic, &p, o.m.msg.Body); err != nil {
					return dst, err
				}
			}
			return dst, nil
		})
		clear(batch) // let the garbage collector have the messages
		if err != nil {
			if !ch.c.writeFailed() {
				// A message does not encode: rather than stall with it
				// unacknowledged, close the connection, which requeues it.
				ch.c.logger.ErrorContext(ctx, "AMQP delivery does not encode; closing the connection", "queue", sc.queue, "err", err)
				ch.c.abort()
			}
			return
		}
	}
}

// A consumer's deliveries go out in writes of at most deliveryBatch
// messages or about deliveryBatchBytes of bodies.
const (
	deliveryBatch      = 64
	deliveryBatchBytes = 256 << 10
)

// globalPrefetch reports whether basic.qos set a prefetch for the whole
// channel.
func (ch *serverChannel) globalPrefetch() bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.global > 0
}

// serverCancel tells the client its consumer ended because its queue
// was deleted, as RabbitMQ's consumer_cancel_notify does.
func (ch *serverChannel) serverCancel(sc *serverConsumer) {
	ch.mu.Lock()
	if ch.consumers[sc.tag] != sc {
		ch.mu.Unlock()
		return
	}
	delete(ch.consumers, sc.tag)
	ch.mu.Unlock()
	sc.stop()
	if ch.c.cancelNote {
		_ = ch.c.sendMethod(ch.id, &amqp091.BasicCancel{ConsumerTag: sc.tag, Nowait: true})
	}
}

// cancel ends a consumer at the client's request: no more deliveries;
// its unacknowledged ones may still be acknowledged.
func (ch *serverChannel) cancel(tag string) {
	ch.mu.Lock()
	sc := ch.consumers[tag]
	delete(ch.consumers, tag)
	ch.mu.Unlock()
	if sc == nil {
		return
	}
	sc.stop()
	<-sc.done
	sc.cons.detach()
	sc.cons.closeIfSettled()
}

// waitCredit waits until the channel's global prefetch allows one more
// unacknowledged delivery and counts it; it reports whether it counted.
func (ch *serverChannel) waitCredit(ctx context.Context) bool {
	for {
		ch.mu.Lock()
		if ch.global == 0 {
			ch.mu.Unlock()
			return false
		}
		if ch.inflight < ch.global {
			ch.inflight++
			ch.mu.Unlock()
			return true
		}
		wait := ch.credit
		ch.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return false
		}
	}
}

func (ch *serverChannel) signalCreditLocked() {
	close(ch.credit)
	ch.credit = make(chan struct{})
}

// register numbers a delivery with the channel's next tag and, unless
// auto-acknowledged, keeps it until settled. It runs under the write
// lock, so tags go out in order.
func (ch *serverChannel) register(p pendingDelivery, keep bool) uint64 {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.nextTag++
	if keep {
		p.tag = ch.nextTag
		ch.unacked = append(ch.unacked, p)
	}
	return ch.nextTag
}

type settleAction int

const (
	settleAck settleAction = iota
	settleRequeue
	settleDrop
)

// settle acknowledges, requeues or drops (dead-letters) the delivery tag,
// or with multiple every one up to it (0: all).
func (ch *serverChannel) settle(m amqp091.Method, tag uint64, multiple bool, action settleAction) error {
	ch.mu.Lock()
	var settled []pendingDelivery
	if multiple {
		if tag > ch.nextTag {
			ch.mu.Unlock()
			return channelError(replyPrecondition, m, "unknown delivery tag %d", tag)
		}
		n := len(ch.unacked)
		if tag != 0 {
			n, _ = slices.BinarySearchFunc(ch.unacked, tag+1, func(p pendingDelivery, t uint64) int { return cmp.Compare(p.tag, t) })
		}
		settled = slices.Clone(ch.unacked[:n])
		ch.unacked = slices.Delete(ch.unacked, 0, n)
	} else {
		i, ok := slices.BinarySearchFunc(ch.unacked, tag, func(p pendingDelivery, t uint64) int { return cmp.Compare(p.tag, t) })
		if !ok {
			ch.mu.Unlock()
			return channelError(replyPrecondition, m, "unknown delivery tag %d", tag)
		}
		settled = []pendingDelivery{ch.unacked[i]}
		ch.unacked = slices.Delete(ch.unacked, i, i+1)
	}
	counted := 0
	for _, p := range settled {
		if p.counted {
			counted++
		}
	}
	if counted > 0 {
		ch.inflight -= counted
		ch.signalCreditLocked()
	}
	ch.mu.Unlock()
	if action == settleRequeue {
		slices.Reverse(settled) // each goes to the front: the oldest last
	}
	for _, p := range settled {
		p.apply(action)
	}
	return nil
}

// apply settles one delivery. A consumer that ended with its deleted
// queue holds nothing to settle, and that is no error.
func (p pendingDelivery) apply(action settleAction) {
	if p.cons != nil {
		switch action {
		case settleAck:
			_ = p.cons.Ack(p.consTag)
		case settleRequeue:
			_ = p.cons.Nack(p.consTag, true)
		case settleDrop:
			_ = p.cons.Nack(p.consTag, false)
		}
		p.cons.closeIfSettled()
		return
	}
	switch action {
	case settleRequeue:
		p.q.requeue([]entry{p.e}, true)
	case settleDrop:
		p.q.reject(p.e)
	}
}

func (ch *serverChannel) get(m *amqp091.BasicGet) error {
	q, err := ch.queue(m, m.Queue)
	if err != nil {
		return err
	}
	e, remaining, ok := q.get()
	if !ok {
		return ch.c.sendMethod(ch.id, &amqp091.BasicGetEmpty{})
	}
	return ch.c.emit(func(dst []byte) ([]byte, error) {
		tag := ch.register(pendingDelivery{q: q, e: e}, !m.NoAck)
		dst, err := amqp091.AppendMethodFrame(dst, ch.id, &amqp091.BasicGetOk{
			DeliveryTag: tag, Redelivered: e.redelivered, Exchange: e.m.exchange, RoutingKey: e.m.key, MessageCount: uint32(remaining),
		})
		if err != nil {
			return dst, err
		}
		p := amqpPropertiesOf(e.m)
		return amqp091.AppendContent(dst, ch.id, ch.c.frameMax, amqp091.ClassBasic, &p, e.m.msg.Body)
	})
}

// finishPublish routes the publish whose content is complete: a
// mandatory one that reaches no queue comes back with basic.return, and
// in confirm mode the publisher gets basic.ack once it is queued.
func (ch *serverChannel) finishPublish(ctx context.Context) error {
	pub, h, body := ch.publish, ch.header, ch.body
	ch.publish, ch.header, ch.body = nil, nil, nil
	if ch.confirm {
		ch.seq++
	}
	p := &h.Properties
	var expiration time.Duration
	if p.Flags&amqp091.FlagExpiration != 0 {
		ms, err := strconv.ParseUint(p.Expiration, 10, 32)
		if err != nil {
			return channelError(replyPrecondition, pub, "invalid expiration '%s': no_integer", p.Expiration)
		}
		expiration = max(time.Duration(ms)*time.Millisecond, time.Nanosecond)
	}
	if p.Flags&amqp091.FlagUserID != 0 && p.UserID != ch.c.user {
		return channelError(replyPrecondition, pub, "user_id property set to '%s' but authenticated user was '%s'", p.UserID, ch.c.user)
	}
	msg := messageFromAMQP(pub.Exchange, pub.RoutingKey, p, body, expiration)
	n, err := ch.c.s.b.publish(pub.Exchange, pub.RoutingKey, msg)
	if errors.Is(err, driver.ErrNotFound) {
		return channelError(replyNotFound, pub, "no exchange '%s' in %s", pub.Exchange, vhost)
	}
	if err != nil {
		return connectionError(replyInternalError, pub, "%v", err)
	}
	seq := ch.seq
	if n == 0 && pub.Mandatory {
		err = ch.c.emit(func(dst []byte) ([]byte, error) {
			dst, err := amqp091.AppendMethodFrame(dst, ch.id, &amqp091.BasicReturn{ReplyCode: replyNoRoute, ReplyText: "NO_ROUTE", Exchange: pub.Exchange, RoutingKey: pub.RoutingKey})
			if err != nil {
				return dst, err
			}
			props := amqpPropertiesOf(msg)
			dst, err = amqp091.AppendContent(dst, ch.id, ch.c.frameMax, amqp091.ClassBasic, &props, body)
			if err != nil || !ch.confirm {
				return dst, err
			}
			return amqp091.AppendMethodFrame(dst, ch.id, &amqp091.BasicAck{DeliveryTag: seq})
		})
		return err
	}
	if ch.confirm {
		return ch.c.sendMethod(ch.id, &amqp091.BasicAck{DeliveryTag: seq})
	}
	return nil
}

// release ends the channel's consumers and returns its unacknowledged
// deliveries to their queues, as a closing channel does.
func (ch *serverChannel) release() {
	ch.publish, ch.header, ch.body = nil, nil, nil
	ch.mu.Lock()
	consumers := make([]*serverConsumer, 0, len(ch.consumers))
	for _, sc := range ch.consumers {
		consumers = append(consumers, sc)
	}
	ch.consumers = map[string]*serverConsumer{}
	unacked := ch.unacked
	ch.unacked = nil
	ch.mu.Unlock()
	for _, sc := range consumers {
		sc.stop()
	}
	for _, sc := range consumers {
		<-sc.done
	}
	// Consumers requeue theirs on Close; then the messages from
	// basic.get go back in front of them, as they were usually taken
	// first.
	byQueue := map[*queue][]entry{}
	closing := map[*consumer]bool{}
	for _, p := range unacked {
		if p.cons != nil {
			closing[p.cons] = true
			continue
		}
		byQueue[p.q] = append(byQueue[p.q], p.e)
	}
	for _, sc := range consumers {
		closing[sc.cons] = true
	}
	for cons := range closing {
		_ = cons.Close()
	}
	for q, es := range byQueue {
		q.requeue(es, true)
	}
}
