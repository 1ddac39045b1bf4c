package amqp1

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	amqp "github.com/Azure/go-amqp"

	"github.com/switchyard-mq/switchyard/internal/rabbitmq"
	"github.com/switchyard-mq/switchyard/transport/driver"
)

// rabbit4Flavour maps the model onto RabbitMQ 4, where AMQP 1.0 is in the
// core: v2 addresses (/queues/Q, /exchanges/X/K) for messages, and the
// AMQP 1.0 management node (/management) for topology, on the same
// connection. There is no AMQP 0-9-1 side connection: see the package
// documentation.
type rabbit4Flavour struct {
	c       *conn
	version string // the broker's, as its open frame said
	mgmt    *management
}

// rabbit4Capabilities are what RabbitMQ 4's AMQP 1.0 gives, as the
// conformance suite shows on RabbitMQ 4.3 (see the package documentation
// for what is not there). Transient queues are declared as the model asks,
// as RabbitMQ 4 permits by default; a node that denies them (deprecated
// feature transient_nonexcl_queues) refuses each with ErrUnsupported.
const rabbit4Capabilities = rabbitCapabilities |
	driver.Capabilities(driver.CapExclusiveQueue|driver.CapDeliveryCount|driver.CapQuorumQueue)

func newRabbit4Flavour(c *conn, version string) *rabbit4Flavour {
	return &rabbit4Flavour{c: c, version: version, mgmt: newManagement(c)}
}

// rabbitMajor is the major version in a RabbitMQ version string ("4.3.6":
// 4), 0 if it has none.
func rabbitMajor(version string) int {
	major, _, _ := strings.Cut(version, ".")
	n, err := strconv.Atoi(major)
	if err != nil {
		return 0
	}
	return n
}

func (f *rabbit4Flavour) name() flavourName                 { return flavourRabbitMQ }
func (f *rabbit4Flavour) capabilities() driver.Capabilities { return rabbit4Capabilities }
func (f *rabbit4Flavour) rabbit() bool                      { return true }
func (f *rabbit4Flavour) addressV2() bool                   { return true }
func (f *rabbit4Flavour) requeueByCopy() bool               { return false }
func (f *rabbit4Flavour) countReturns() bool                { return true }
func (f *rabbit4Flavour) detachLinks() bool                 { return false }

// encodeSegment percent-encodes name for one segment of a v2 address or a
// management path: every byte but RFC 3986's unreserved characters, so
// that "/", "%", ";", "=" and spaces in names survive RabbitMQ's decoding.
func encodeSegment(name string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.', c == '_', c == '~':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// queueAddress is /queues/Q, the v2 address of a queue.
func queueAddress(queue string) string { return "/queues/" + encodeSegment(queue) }

// consumeAddress is /queues/Q: it consumes an existing queue and never
// declares one (a missing queue is amqp:not-found).
func (f *rabbit4Flavour) consumeAddress(queue string) (string, error) {
	if queue == "" {
		return "", fmt.Errorf("%w: consume a queue with an empty name", driver.ErrNotFound)
	}
	return queueAddress(queue), nil
}

// publishAddress is the anonymous terminus (a null target, one link for
// every destination) with the destination in the message's to field:
// /queues/Q for the default exchange, /exchanges/X/K, or /exchanges/X for
// an empty key. The default exchange with an empty key names no queue,
// so the message is dropped, as an unroutable one is.
func (f *rabbit4Flavour) publishAddress(exchange, key string) (string, string, bool, error) {
	switch {
	case exchange == "" && key == "":
		return "", "", false, nil
	case exchange == "":
		return "", queueAddress(key), true, nil
	case key == "":
		return "", "/exchanges/" + encodeSegment(exchange), true, nil
	}
	return "", "/exchanges/" + encodeSegment(exchange) + "/" + encodeSegment(key), true, nil
}

// declareExchange puts /exchanges/X: its kind, durable and auto-delete
// flags, not internal, no arguments, as the rabbit driver declares it.
func (f *rabbit4Flavour) declareExchange(ctx context.Context, ex driver.Exchange) error {
	_, err := f.mgmt.request(ctx, "PUT", "/exchanges/"+encodeSegment(ex.Name), map[string]any{
		"type": string(ex.Kind), "durable": ex.Durable, "auto_delete": ex.AutoDelete, "internal": false,
		"arguments": map[string]any{},
	})
	return err
}

// deleteExchange deletes /exchanges/X; a missing one is no error.
func (f *rabbit4Flavour) deleteExchange(ctx context.Context, name string) error {
	_, err := f.mgmt.request(ctx, "DELETE", "/exchanges/"+encodeSegment(name), nil)
	if errors.Is(err, driver.ErrNotFound) {
		return nil
	}
	return err
}

// declareQueue puts /queues/Q with the flags and exactly the x-arguments
// the rabbit driver gives the queue (internal/rabbitmq), so that a queue
// declared through either driver, or by an oslo.messaging peer, is the
// same queue. An exclusive queue belongs to this AMQP 1.0 connection, so
// this transport's links can consume it. Queues the driver names are
// switchyard.gen-.
func (f *rabbit4Flavour) declareQueue(ctx context.Context, q driver.Queue) (string, error) {
	if q.DeadLetterExchange != "" || q.DeadLetterRoutingKey != "" || q.DeliveryLimit > 0 {
		return "", fmt.Errorf("%w: dead-lettering and delivery limits through AMQP 1.0 on RabbitMQ %s", driver.ErrUnsupported, f.version)
	}
	if q.Name == "" {
		q.Name = rabbitmq.ServerNamedQueue()
	}
	d := rabbitmq.QueueOptions{}.Declaration(q)
	args := make(map[string]any, len(d.Args))
	for k, v := range d.Args {
		args[k] = v
	}
	_, err := f.mgmt.request(ctx, "PUT", queueAddress(q.Name), map[string]any{
		"durable": d.Durable, "exclusive": d.Exclusive, "auto_delete": d.AutoDelete, "arguments": args,
	})
	if err != nil {
		return "", err
	}
	return q.Name, nil
}

// deleteQueue deletes /queues/Q and returns how many messages it held; a
// missing queue is no error (0).
func (f *rabbit4Flavour) deleteQueue(ctx context.Context, name string) (int, error) {
	reply, err := f.mgmt.request(ctx, "DELETE", queueAddress(name), nil)
	if errors.Is(err, driver.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return messageCount(reply), nil
}

// purgeQueue deletes /queues/Q/messages and returns how many there were.
func (f *rabbit4Flavour) purgeQueue(ctx context.Context, name string) (int, error) {
	reply, err := f.mgmt.request(ctx, "DELETE", queueAddress(name)+"/messages", nil)
	if err != nil {
		return 0, err
	}
	return messageCount(reply), nil
}

// messageCount reads the message_count of a management reply.
func messageCount(reply any) int {
	m, _ := reply.(map[string]any)
	switch n := m["message_count"].(type) {
	case uint64:
		return int(n)
	case int64:
		return int(n)
	case uint32:
		return int(n)
	case int32:
		return int(n)
	}
	return 0
}

// checkQueue gets /queues/Q: 404 is ErrNotFound.
func (f *rabbit4Flavour) checkQueue(ctx context.Context, name string) error {
	_, err := f.mgmt.request(ctx, "GET", queueAddress(name), nil)
	return err
}

// bind posts to /bindings, with no arguments.
func (f *rabbit4Flavour) bind(ctx context.Context, b driver.Binding) error {
	_, err := f.mgmt.request(ctx, "POST", "/bindings", map[string]any{
		"source": b.Exchange, "destination_queue": b.Queue, "binding_key": b.Key, "arguments": map[string]any{},
	})
	return err
}

// unbind deletes the binding by its path; a missing binding, exchange or
// queue is no error.
func (f *rabbit4Flavour) unbind(ctx context.Context, b driver.Binding) error {
	path := "/bindings/src=" + encodeSegment(b.Exchange) + ";dstq=" + encodeSegment(b.Queue) + ";key=" + encodeSegment(b.Key) + ";args="
	_, err := f.mgmt.request(ctx, "DELETE", path, nil)
	if errors.Is(err, driver.ErrNotFound) {
		return nil
	}
	return err
}

func (f *rabbit4Flavour) close() error {
	f.mgmt.close()
	return nil
}

// managementTimeout bounds one management request when the caller's
// context does not: the broker answers at once, or the link pair is stuck.
const managementTimeout = 30 * time.Second

// ManagementError is a refusal of RabbitMQ 4's AMQP 1.0 management node:
// the HTTP-like status and the broker's text of a request the driver made
// to declare, bind, purge or delete. errors.Is matches it to the model's
// sentinel for its status (see the package documentation).
type ManagementError struct {
	// Method and Path are the request: "PUT", "/queues/q".
	Method, Path string
	// Status is the status code the broker answered, such as 404.
	Status int
	// Text is the broker's description.
	Text string

	sentinel error
}

// Error implements error: the sentinel, the request, the status and the
// broker's text on one line.
func (e *ManagementError) Error() string {
	text := strings.Join(strings.Fields(e.Text), " ")
	if e.sentinel != nil {
		return fmt.Sprintf("%v: %s %s: %d %s", e.sentinel, e.Method, e.Path, e.Status, text)
	}
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, text)
}

// Unwrap gives errors.Is the model's sentinel, if the status has one.
func (e *ManagementError) Unwrap() error { return e.sentinel }

// managementSentinel maps a management status and text to the model's
// sentinel, as the AMQP 0-9-1 reply codes map (internal/rabbitmq): 404 not
// found, 409 precondition failed (an inequivalent redeclaration), 405 and
// "in exclusive use" in use, 403 access refused; 400 is a denied
// deprecated feature (unsupported), a missing exchange or queue named in
// a binding (not found), or an invalid request.
func managementSentinel(status int, text string) error {
	switch {
	case strings.Contains(text, "in exclusive use"), strings.Contains(text, "exclusive access"), status == 405:
		return driver.ErrInUse
	case status == 404:
		return driver.ErrNotFound
	case status == 409:
		return driver.ErrPrecondition
	case status == 403:
		return driver.ErrInvalid
	case status == 400 && strings.Contains(text, "is deprecated"):
		return driver.ErrUnsupported
	case status == 400 && (strings.HasPrefix(text, "no exchange") || strings.HasPrefix(text, "no queue") || strings.Contains(text, "not found")):
		return driver.ErrNotFound
	case status == 400:
		return driver.ErrInvalid
	}
	return nil
}

// management is the client end of RabbitMQ 4's management node: a link
// pair (a sender to /management and a receiver from it, named alike and
// marked paired) on a session of its own on the transport's connection,
// attached on first use and again after a reconnection. Requests are
// HTTP-like: the path in the to field, the method in the subject, the
// body in an amqp-value section, reply-to "$me"; the reply's correlation
// id is the request's message id, its subject the status code, its body
// a map or the error text. One request runs at a time.
type management struct {
	c    *conn
	turn chan struct{} // holds a token while a request runs

	// The link pair and the connection generation it is on; guarded by
	// turn.
	gen  uint64
	sess *amqp.Session
	snd  *amqp.Sender
	rcv  *amqp.Receiver
	next uint64
}

func newManagement(c *conn) *management {
	return &management{c: c, turn: make(chan struct{}, 1)}
}

// managementAddress is the management node's address.
const managementAddress = "/management"

// request sends method path with body (nil: null) and returns the reply's
// body. A status other than 2xx is a *ManagementError. It returns when ctx
// ends, and then drops the link pair, whose reply would come too late.
func (m *management) request(ctx context.Context, method, path string, body any) (any, error) {
	select {
	case m.turn <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-m.turn }()
	if err := m.attach(ctx); err != nil {
		return nil, err
	}
	type result struct {
		reply *amqp.Message
		err   error
	}
	m.next++
	id := "switchyard-" + strconv.FormatUint(m.next, 10)
	done := make(chan result, 1)
	snd, rcv := m.snd, m.rcv
	go func() {
		// Not bound by ctx: go-amqp leaves a link broken when a send is
		// cancelled midway. Ending the session below ends these calls.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), managementTimeout)
		defer cancel()
		reply, err := m.roundTrip(rctx, snd, rcv, id, method, path, body)
		done <- result{reply, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		m.drop()
		<-done
		return nil, fmt.Errorf("%s %s on the management node: %w", method, path, ctx.Err())
	}
	if r.err != nil {
		m.drop()
		return nil, fmt.Errorf("%s %s on the management node: %w", method, path, mapError(r.err))
	}
	status := 0
	if p := r.reply.Properties; p != nil && p.Subject != nil {
		status, _ = strconv.Atoi(*p.Subject)
	}
	if status >= 200 && status < 300 {
		return r.reply.Value, nil
	}
	text, _ := r.reply.Value.(string)
	return nil, &ManagementError{Method: method, Path: path, Status: status, Text: text, sentinel: managementSentinel(status, text)}
}

// roundTrip sends one request and receives its reply, skipping replies
// to earlier requests.
func (m *management) roundTrip(ctx context.Context, snd *amqp.Sender, rcv *amqp.Receiver, id, method, path string, body any) (*amqp.Message, error) {
	replyTo := "$me"
	if body == nil {
		body = amqp.Null{}
	}
	req := &amqp.Message{
		Value:      body,
		Properties: &amqp.MessageProperties{MessageID: id, To: &path, Subject: &method, ReplyTo: &replyTo},
	}
	if err := snd.Send(ctx, req, &amqp.SendOptions{Settled: true}); err != nil {
		return nil, err
	}
	for {
		reply, err := rcv.Receive(ctx, nil)
		if err != nil {
			return nil, err
		}
		_ = rcv.AcceptMessage(ctx, reply) // pre-settled: nothing is sent
		if reply.Properties != nil && idString(reply.Properties.CorrelationID) == id {
			return reply, nil
		}
	}
}

// pingAttempts bounds the link pairs attach tries: see attach.
const pingAttempts = 5

// attach makes sure the link pair is on the current connection. The
// broker must hold credit for the reply before a request reaches it, or
// it refuses the request and detaches the pair ("insufficient credit"),
// possibly after carrying it out. go-amqp grants a receiver's first credit
// from a goroutine of its own, with no way to wait for it to be sent, so a
// new pair first sends a ping, a GET of a queue that does not exist, and
// takes a reply (any status) as proof that credit flows; a pair refused
// for want of credit is replaced, up to pingAttempts times. From then on
// go-amqp tops the credit up long before it runs out (one request is in
// flight at a time).
func (m *management) attach(ctx context.Context) error {
	ac, gen, err := m.c.current(ctx, nil)
	if err != nil {
		return err
	}
	if m.sess != nil && m.gen == gen && ac.Err() == nil {
		return nil
	}
	for attempt := 1; ; attempt++ {
		m.drop()
		if err := m.attachPair(ctx); err != nil {
			return err
		}
		hctx, cancel := handshakeContext(ctx)
		m.next++
		_, err := m.roundTrip(hctx, m.snd, m.rcv, "switchyard-ping-"+strconv.FormatUint(m.next, 10), "GET", queueAddress(randomName("switchyard.ping-")), nil)
		cancel()
		if err == nil {
			return nil
		}
		m.drop()
		var ae *amqp.Error
		if !errors.As(err, &ae) || !strings.Contains(ae.Description, "insufficient credit") || attempt == pingAttempts {
			return fmt.Errorf("open the link pair to RabbitMQ's management node (attempt %d): %w", attempt, mapError(err))
		}
		m.c.logger.DebugContext(ctx, "amqp1: management link pair refused for want of credit; attaching another", "attempt", attempt, "err", err)
	}
}

// attachPair attaches a new link pair on a session of its own. The
// receiver attaches first, with credit, which gives go-amqp the sender's
// round trip to grant it.
func (m *management) attachPair(ctx context.Context) error {
	sess, gen, err := m.c.newSession(ctx, nil)
	if err != nil {
		return err
	}
	hctx, cancel := handshakeContext(ctx)
	defer cancel()
	name := randomName("switchyard-management-")
	paired := map[string]any{"paired": true}
	settled := amqp.SenderSettleModeSettled
	rcv, err := sess.NewReceiver(hctx, managementAddress, &amqp.ReceiverOptions{
		Name: name, Properties: paired, TargetAddress: managementAddress,
		RequestedSenderSettleMode: &settled, Credit: 16,
	})
	if err != nil {
		closeSession(sess)
		return fmt.Errorf("attach to RabbitMQ's management node: %w", mapError(err))
	}
	snd, err := sess.NewSender(hctx, managementAddress, &amqp.SenderOptions{
		Name: name, Properties: paired, SourceAddress: managementAddress, SettlementMode: &settled,
	})
	if err != nil {
		closeSession(sess)
		return fmt.Errorf("attach to RabbitMQ's management node: %w", mapError(err))
	}
	m.sess, m.snd, m.rcv, m.gen = sess, snd, rcv, gen
	return nil
}

// drop ends the link pair's session, if any; the next request attaches
// a new pair.
func (m *management) drop() {
	if m.sess != nil {
		closeSession(m.sess)
	}
	m.sess, m.snd, m.rcv = nil, nil, nil
}

// close ends the link pair, waiting for a request that runs.
func (m *management) close() {
	m.turn <- struct{}{}
	defer func() { <-m.turn }()
	m.drop()
}
