package rpc

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-mq/switchyard/internal/messaging"
	"github.com/switchyard-mq/switchyard/internal/oslo"
	"github.com/switchyard-mq/switchyard/transport"
)

// Client sends RPC requests: Cast (no reply) and Call (wait for the
// reply), in oslo.messaging's format, so a Python server can answer as
// well as a Go one. It is safe for concurrent use. Prepare returns a
// client with per-call overrides that shares this one's reply queue. Close
// the client (not a prepared one) when done.
type Client struct {
	set    callSettings
	shared *clientShared
}

// clientShared is what a client and the clients Prepare makes share: the
// transport, the reply queue and its consumer, and the calls waiting.
type clientShared struct {
	tr        *transport.Transport
	topo      messaging.Topology
	logger    *slog.Logger
	publisher messaging.Publisher
	inst      instruments
	mandatory bool // the transport has CapMandatory: call requests are mandatory

	declaredMu sync.Mutex   // serializes declarations
	declared   sync.Map     // names of exchanges this client declared
	replyQFast atomic.Value // the reply queue's name, once declared
	// lastValid is the target validated last: a client mostly sends to
	// the same target, which is then not validated again.
	lastValid atomic.Pointer[transport.Target]

	mu       sync.Mutex // orders the reply queue's changes
	closed   atomic.Bool
	replyQ   string // "" until the first Call
	consumer *transport.Consumer
	loops    sync.WaitGroup // reply loops, the current one and any ending

	// pending are the calls waiting for replies, spread by _msg_id over
	// locks of their own: the callers registering and releasing calls
	// and the reply loop delivering to them would otherwise all queue on
	// one lock.
	pending [pendingShards]pendingShard

	// idle keeps finished pendingCalls, with their channel and timer, for
	// the next calls.
	idle sync.Pool

	codecs flatCodecs // for arguments and results
}

// pendingShards is how many locks the pending calls are spread over.
const (
	pendingShardBits = 4
	pendingShards    = 1 << pendingShardBits
)

// pendingShard holds some of the pending calls; replies are delivered to
// them under its lock.
type pendingShard struct {
	mu    sync.Mutex
	calls map[string]*pendingCall
	// A cache line of its own: shards are locked from different cores.
	_ [64 - 16]byte
}

// pendingCall collects the replies to one call.
type pendingCall struct {
	notify chan struct{} // capacity 1
	// timeout ends the call at its deadline, through expire: the wait, so
	// that a caller waits on notify alone (a select with a timer's channel
	// costs more), and ctx, the call's context.
	timeout *time.Timer
	ctx     *lazyContext

	mu         sync.Mutex
	final      *oslo.Reply
	lastResult json.RawMessage // legacy servers send the result before the ending
	heartbeat  bool
	expired    bool  // the deadline passed
	lost       error // the reply consumer failed
}

// NewClient returns a client sending through tr. The control exchange and
// queue flags come from tr's URL options, as oslo.messaging reads them
// (control_exchange, amqp_durable_queues, amqp_auto_delete,
// rabbit_transient_queues_ttl). Nothing is declared until the first send.
func NewClient(tr *transport.Transport, opts ...Option) (*Client, error) {
	if tr == nil {
		return nil, fmt.Errorf("rpc client: %w: no transport", transport.ErrInvalid)
	}
	topo, err := messaging.NewTopology(tr)
	if err != nil {
		return nil, fmt.Errorf("rpc client on %s: %w", tr, err)
	}
	logger := tr.Logger().With("component", "rpc.client")
	c := &Client{
		set: callSettings{timeout: DefaultTimeout, retry: -1},
		shared: &clientShared{
			tr: tr, topo: topo, logger: logger,
			publisher: messaging.NewPublisher(tr, logger, "publish failed; retrying"),
			inst:      newInstruments(tr, "switchyard.rpc.client.duration", "Time from sending an RPC call to its reply, or a cast's send."),
			mandatory: tr.Capabilities().Has(transport.CapMandatory),
		},
	}
	for _, opt := range opts {
		opt(&c.set)
	}
	return c, nil
}

// Prepare returns a client that applies opts on top of c's settings and
// shares c's reply queue, as oslo.messaging's prepare().
func (c *Client) Prepare(opts ...Option) *Client {
	p := &Client{set: c.set, shared: c.shared}
	for _, opt := range opts {
		opt(&p.set)
	}
	return p
}

// Cast sends method(args) to target and returns once the backend has taken
// the request; no reply comes back, even if the method fails. args must
// marshal to a JSON object (a struct or a map), oslo's keyword arguments;
// nil sends none. With target.Fanout every server on the topic gets it.
func (c *Client) Cast(ctx context.Context, target transport.Target, method string, args any) error {
	target = c.set.apply(target)
	ctx, end := c.shared.inst.start(ctx, trace.SpanKindProducer, target, method)
	err := c.send(ctx, target, method, args, nil)
	end(err)
	if err != nil {
		return fmt.Errorf("rpc cast %s to %s: %w", method, target, err)
	}
	return nil
}

// Call sends method(args) to one server of target, waits for its reply and
// decodes the result into result (a pointer; nil discards it) as
// encoding/json would: a null result (Python's None) sets an interface,
// map, slice or pointer to nil and leaves other types as they are. Numbers
// decoded into interface values are json.Number, keeping their exact text.
//
// If no reply arrives within the timeout (WithTimeout, or ctx's deadline if
// sooner) the error wraps transport.ErrTimeout; if ctx is cancelled the
// call is abandoned and a late reply dropped. If the server's method
// failed, the error is a *RemoteError (errors.As), which unwraps to the Go
// error registered for its module and class in the client's ErrorRegistry
// (WithErrors); an unknown method or version also matches ErrNoSuchMethod
// or ErrUnsupportedVersion.
func (c *Client) Call(ctx context.Context, target transport.Target, method string, args any, result any) error {
	target = c.set.apply(target)
	ctx, end := c.shared.inst.start(ctx, trace.SpanKindClient, target, method)
	err := c.call(ctx, target, method, args, result)
	end(err)
	if err != nil {
		return fmt.Errorf("rpc call %s to %s: %w", method, target, err)
	}
	return nil
}

func (c *Client) call(ctx context.Context, target transport.Target, method string, args any, result any) error {
	if target.Fanout {
		return fmt.Errorf("%w: a call cannot be fanout; use Cast", transport.ErrInvalid)
	}
	if result != nil {
		// Checked before sending: the remote method must not run for a
		// result that cannot be stored.
		if rv := reflect.ValueOf(result); rv.Kind() != reflect.Pointer || rv.IsNil() {
			return fmt.Errorf("%w: result must be a non-nil pointer (or nil to discard it), not %T", transport.ErrInvalid, result)
		}
	}
	timeout := c.set.timeout
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < timeout {
		timeout = time.Until(deadline)
	}
	if timeout <= 0 {
		return fmt.Errorf("%w before the call was sent", transport.ErrTimeout)
	}
	// The timeout bounds the whole call: declaring the reply queue and
	// sending wait for a connection that is down, too.
	parent := ctx
	deadline := time.Now().Add(timeout)
	callCtx := newLazyContext(ctx, deadline, nil)
	defer callCtx.end()
	ctx = callCtx
	// The call's timer ends callCtx at the deadline too, so that its Done
	// (the driver waits on it for a publish's confirm) needs no timer of
	// its own.
	pc := c.shared.newPending(callCtx, deadline)
	// Running out of time (this timeout or the caller's deadline) is
	// ErrTimeout; a cancellation by the caller stays context.Canceled.
	timedOut := func(what string, err error) error {
		if errors.Is(err, transport.ErrTimeout) || errors.Is(parent.Err(), context.Canceled) || ctx.Err() == nil {
			return err
		}
		return fmt.Errorf("%w: %s within %v: %w", transport.ErrTimeout, what, timeout, err)
	}
	msgID := oslo.NewID()
	defer c.shared.release(msgID, pc)
	var replyQ string
	for {
		var err error
		if replyQ, err = c.shared.replyQueue(ctx); err != nil {
			return timedOut("no reply queue", err)
		}
		if err = c.shared.register(msgID, replyQ, pc); err == nil {
			break
		}
		if !errors.Is(err, errReplyQueueReplaced) || ctx.Err() != nil {
			return timedOut("no reply queue", err)
		}
	}

	call := &call{msgID: msgID, replyQ: replyQ, timeout: timeout}
	if err := c.send(ctx, target, method, args, call); err != nil {
		return timedOut("request "+msgID+" not sent", err)
	}
	reply, err := c.wait(parent, pc, msgID)
	if err != nil {
		return timedOut("no reply to message ID "+msgID, err)
	}
	if reply.Failure != nil {
		re := remoteErrorFromFailure(reply.Failure)
		if err := c.set.errors.rebuild(re, reply.Failure.Kwargs); err != nil {
			c.shared.logger.WarnContext(ctx, "remote error left unregistered", "msg_id", msgID, "err", err)
		}
		return re
	}
	if result == nil {
		return nil
	}
	if isJSONNull(reply.Result) {
		// Python's None, or a reply without a result: as encoding/json
		// decodes null, an interface, map, slice or pointer becomes nil
		// and anything else is left as it is.
		err = json.Unmarshal([]byte("null"), result)
	} else {
		err = c.shared.codecs.decodeResult(reply.Result, result)
	}
	if err != nil {
		return fmt.Errorf("decode the result into %T: %w", result, err)
	}
	return nil
}

// call is what a Call adds to a request.
type call struct {
	msgID, replyQ string
	timeout       time.Duration
}

// send encodes and publishes one request; call is nil for a cast.
func (c *Client) send(ctx context.Context, target transport.Target, method string, args any, call *call) error {
	if err := c.shared.validate(target); err != nil {
		return err
	}
	if method == "" {
		return fmt.Errorf("%w: empty method name", transport.ErrInvalid)
	}
	argsJSON, err := c.shared.codecs.encodeArgs(args)
	if err != nil {
		return fmt.Errorf("%w: %v", transport.ErrInvalid, err)
	}
	rc, err := messaging.EncodeRequestContext(RequestContextFrom(ctx))
	if err != nil {
		return fmt.Errorf("%w: %v", transport.ErrInvalid, err)
	}
	req := oslo.Request{
		Method: method, Args: argsJSON, Namespace: target.Namespace, Version: target.Version,
		UniqueID: oslo.NewID(), Context: rc,
	}
	msg := transport.Message{ContentType: contentType, ContentEncoding: contentEncoding, Persistent: c.shared.topo.Persistent()}
	if call != nil {
		// A call's request is mandatory, as oslo's at_least_once
		// transport option makes it: a request no queue takes fails the
		// call at once rather than at its timeout.
		msg.Mandatory = c.shared.mandatory
		req.MsgID, req.ReplyQ = call.msgID, call.replyQ
		if m := c.set.callMonitorTimeout; m > 0 {
			secs := math.Ceil(m.Seconds())
			req.Timeout = &secs
		}
		msg.Expiration = call.timeout
	}
	annotate(ctx, req.UniqueID, req.MsgID)
	if msg.Body, err = oslo.WrapRequest(&req); err != nil {
		return fmt.Errorf("%w: %v", transport.ErrInvalid, err)
	}

	exchange, key := c.shared.topo.ExchangeName(target), oslo.TopicQueue(target.Topic)
	decl := c.shared.topo.Exchange(exchange)
	switch {
	case target.Fanout:
		decl = c.shared.topo.FanoutExchange(target.Topic)
		exchange, key = decl.Name, ""
	case target.Server != "":
		key = oslo.ServerQueue(target.Topic, target.Server)
	}
	if err := c.shared.declareExchange(ctx, decl); err != nil {
		return err
	}
	err = c.shared.publisher.Publish(ctx, exchange, key, msg, c.set.retry)
	if errors.Is(err, transport.ErrUnroutable) {
		return fmt.Errorf("no server consumes %s (no queue is bound to routing key %q on exchange %q): %w", target, key, exchange, err)
	}
	return err
}

// wait waits for the final reply to msgID until the call's deadline (pc's
// timer), or until parent ends.
func (c *Client) wait(parent context.Context, pc *pendingCall, msgID string) (*oslo.Reply, error) {
	var monitor *time.Timer
	var monitorC <-chan time.Time
	if m := c.set.callMonitorTimeout; m > 0 {
		monitor = time.NewTimer(m)
		defer monitor.Stop()
		monitorC = monitor.C
	}
	parentDone := parent.Done()
	for {
		if monitorC == nil && parentDone == nil {
			<-pc.notify
		} else {
			select {
			case <-pc.notify:
			case <-monitorC:
				return nil, fmt.Errorf("%w: no heartbeat from the server for message ID %s within the call monitor timeout %v",
					transport.ErrTimeout, msgID, c.set.callMonitorTimeout)
			case <-parentDone:
				return nil, parent.Err()
			}
		}
		reply, heartbeat, err := pc.take()
		if reply != nil || err != nil {
			return reply, err
		}
		if heartbeat && monitor != nil {
			monitor.Reset(c.set.callMonitorTimeout)
		}
	}
}

// take returns the final reply (or why there is none: the deadline
// passed, the consumer failed) once there is one, and whether heartbeats
// arrived since the last take.
func (pc *pendingCall) take() (*oslo.Reply, bool, error) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	heartbeat := pc.heartbeat
	pc.heartbeat = false
	if pc.final != nil && isJSONNull(pc.final.Result) && pc.final.Failure == nil {
		pc.final.Result = pc.lastResult
	}
	switch {
	case pc.final != nil:
		return pc.final, heartbeat, nil
	case pc.lost != nil:
		return nil, heartbeat, pc.lost
	case pc.expired:
		return nil, heartbeat, context.DeadlineExceeded
	}
	return nil, heartbeat, nil
}

// expire is the timeout's: the call's deadline passed.
func (pc *pendingCall) expire() {
	pc.mu.Lock()
	pc.expired = true
	pc.mu.Unlock()
	pc.ctx.cancel(context.DeadlineExceeded)
	pc.wake()
}

// deliver records one reply for the call; it reports false for a
// duplicate final reply. The caller wakes pc once it has let go of the
// shard's lock: a wake-up that arrives after pc serves another call only
// makes that call look at its state once more.
func (pc *pendingCall) deliver(r *oslo.Reply) bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	switch {
	case pc.final != nil:
		return false
	case r.Ending || r.Failure != nil:
		pc.final = r
	case !isJSONNull(r.Result):
		pc.lastResult = r.Result // the first half of a legacy two-part reply
	default:
		pc.heartbeat = true
	}
	return true
}

// fail records why no reply will come; the caller wakes pc, as after
// deliver.
func (pc *pendingCall) fail(err error) {
	pc.mu.Lock()
	pc.lost = err
	pc.mu.Unlock()
}

// wake tells the caller to take what changed; one pending wake-up is
// enough, the caller reads the state under mu.
func (pc *pendingCall) wake() {
	select {
	case pc.notify <- struct{}{}:
	default:
	}
}

func isJSONNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

func (s *clientShared) isClosed() bool { return s.closed.Load() }

// errReplyQueueReplaced: the reply queue a call was about to use ended
// (its consumer failed) and the next call declares another.
var errReplyQueueReplaced = errors.New("the reply queue ended")

// newPending returns a call's pendingCall, its timer armed to end the
// call and ctx at deadline; ctx's Done then needs no timer of its own.
func (s *clientShared) newPending(ctx *lazyContext, deadline time.Time) *pendingCall {
	pc, _ := s.idle.Get().(*pendingCall)
	if pc == nil {
		pc = &pendingCall{notify: make(chan struct{}, 1)}
		pc.timeout = time.AfterFunc(time.Hour, pc.expire)
		pc.timeout.Stop()
	}
	pc.ctx = ctx
	ctx.deadlineWatched = true
	pc.timeout.Reset(time.Until(deadline))
	return pc
}

// shard returns the shard holding the call waiting for msgID: the top
// bits of its first 8 bytes multiplied by a constant (Fibonacci hashing).
// Switchyard's msgIDs are random hex, so their first 8 bytes spread them
// evenly; whatever ids a peer sends only share a lock the more.
func (s *clientShared) shard(msgID string) *pendingShard {
	var prefix [8]byte
	copy(prefix[:], msgID)
	h := binary.LittleEndian.Uint64(prefix[:]) * 0x9e3779b97f4a7c15
	return &s.pending[h>>(64-pendingShardBits)]
}

// register records pc as the call waiting for replies to msgID on
// replyQ. It fails if the client closed, or if replyQ is no longer the
// client's reply queue: a call registered then would wait for replies
// nobody reads. Both are checked under the shard's lock, and both change
// before replyConsumerEnded takes the shards' locks to fail the calls
// waiting: so a call is either refused here or failed there.
func (s *clientShared) register(msgID, replyQ string, pc *pendingCall) error {
	sh := s.shard(msgID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	switch {
	case s.closed.Load():
		return fmt.Errorf("%w: rpc client closed", transport.ErrClosed)
	case s.currentReplyQueue() != replyQ:
		return errReplyQueueReplaced
	}
	if sh.calls == nil {
		sh.calls = map[string]*pendingCall{}
	}
	sh.calls[msgID] = pc
	return nil
}

// currentReplyQueue is the reply queue's name, "" while there is none.
func (s *clientShared) currentReplyQueue() string {
	name, _ := s.replyQFast.Load().(string)
	return name
}

// release ends a call. Replies are delivered under the shard's lock, so
// none reaches pc once it is out of the map, and pc can serve another
// call; unless its timeout fired, which may still be running expire.
func (s *clientShared) release(msgID string, pc *pendingCall) {
	sh := s.shard(msgID)
	sh.mu.Lock()
	delete(sh.calls, msgID)
	sh.mu.Unlock()
	if !pc.timeout.Stop() {
		return
	}
	pc.ctx = nil
	pc.final, pc.lastResult, pc.heartbeat, pc.expired, pc.lost = nil, nil, false, false, nil
	select {
	case <-pc.notify:
	default:
	}
	s.idle.Put(pc)
}

// validate validates target, unless it is the target validated last.
func (s *clientShared) validate(target transport.Target) error {
	if last := s.lastValid.Load(); last != nil && *last == target {
		return nil
	}
	if err := target.Validate(); err != nil {
		return err
	}
	valid := target // copied to the heap only here
	s.lastValid.Store(&valid)
	return nil
}

// declareExchange declares an exchange the first time this client sends to
// it, as oslo's publishers do, so a send never depends on a server having
// started first.
func (s *clientShared) declareExchange(ctx context.Context, ex transport.Exchange) error {
	if _, ok := s.declared.Load(ex.Name); ok {
		return nil
	}
	s.declaredMu.Lock()
	defer s.declaredMu.Unlock()
	if _, ok := s.declared.Load(ex.Name); ok {
		return nil
	}
	if err := s.topo.DeclareExchange(ctx, s.tr, ex); err != nil {
		return err
	}
	s.declared.Store(ex.Name, true)
	return nil
}

// replyQueue declares the reply queue and starts its consumer on the first
// call; a failure is returned to that call and retried by the next.
func (s *clientShared) replyQueue(ctx context.Context) (string, error) {
	if name := s.currentReplyQueue(); name != "" && !s.isClosed() {
		return name, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return "", fmt.Errorf("%w: rpc client closed", transport.ErrClosed)
	}
	if s.replyQ != "" {
		return s.replyQ, nil
	}
	q, err := s.topo.ReplyQueue()
	if err != nil {
		return "", err
	}
	name, err := s.topo.DeclareQueue(ctx, s.tr, q)
	if err != nil {
		return "", err
	}
	consumer, err := s.tr.Consume(ctx, name, transport.ConsumeOptions{AutoAck: true})
	if err != nil {
		_, _ = s.tr.DeleteQueue(context.WithoutCancel(ctx), name)
		return "", err
	}
	s.replyQ, s.consumer = name, consumer
	s.replyQFast.Store(name)
	s.loops.Go(func() { s.receiveReplies(consumer) })
	return name, nil
}

// receiveReplies hands each reply to its waiting call until the consumer
// ends. Replies for calls no longer waiting (late, duplicate, or for
// another client) are dropped.
func (s *clientShared) receiveReplies(consumer *transport.Consumer) {
	for {
		d, err := consumer.Receive(context.Background())
		if err != nil {
			s.replyConsumerEnded(consumer, err)
			return
		}
		ctx := d.TraceContext(context.Background())
		body, err := oslo.Decompress(d.Headers, d.Body)
		if err != nil {
			s.logger.WarnContext(ctx, "malformed reply dropped", "queue", consumer.Queue(), "err", err)
			continue
		}
		reply, err := oslo.UnwrapReply(body)
		if err != nil && reply == nil {
			s.logger.WarnContext(ctx, "malformed reply dropped", "queue", consumer.Queue(), "err", err)
			continue
		}
		sh := s.shard(reply.MsgID)
		sh.mu.Lock()
		pc := sh.calls[reply.MsgID]
		delivered := false
		switch {
		case pc != nil && err != nil:
			// Readable enough to know whose it is: fail that call now
			// rather than let it time out.
			pc.fail(fmt.Errorf("malformed reply: %w", err))
		case pc != nil:
			delivered = pc.deliver(reply)
		}
		sh.mu.Unlock()
		if pc != nil && (delivered || err != nil) {
			pc.wake()
		}
		switch {
		case err != nil:
			s.logger.WarnContext(ctx, "malformed reply", "msg_id", reply.MsgID, "err", err)
		case !delivered:
			s.logger.DebugContext(ctx, "reply for no waiting call dropped", "msg_id", reply.MsgID, "ending", reply.Ending)
		}
	}
}

// replyConsumerEnded fails the calls waiting for replies and, unless the
// client is closing, forgets the reply queue (deleting it if it is still
// there), so that the next call declares another rather than waiting for
// replies nobody reads.
func (s *clientShared) replyConsumerEnded(consumer *transport.Consumer, err error) {
	s.mu.Lock()
	closed := s.closed.Load()
	if !closed {
		s.replyQ, s.consumer = "", nil
		s.replyQFast.Store("")
	}
	// Under s.mu, so that no new reply queue's calls are among them.
	for i := range s.pending {
		sh := &s.pending[i]
		sh.mu.Lock()
		for _, pc := range sh.calls {
			pc.fail(fmt.Errorf("reply queue %s: %w", consumer.Queue(), err))
			pc.wake()
		}
		sh.mu.Unlock()
	}
	s.mu.Unlock()
	if closed {
		return
	}
	ctx := context.Background()
	s.logger.ErrorContext(ctx, "reply consumer ended; waiting calls fail and the next call declares a new reply queue", "queue", consumer.Queue(), "err", err)
	_ = consumer.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, derr := s.tr.DeleteQueue(ctx, consumer.Queue()); derr != nil && !errors.Is(derr, transport.ErrNotFound) && !errors.Is(derr, transport.ErrClosed) {
		s.logger.WarnContext(ctx, "deleting the ended reply queue failed", "queue", consumer.Queue(), "err", derr)
	}
}

// Close stops the reply consumer and deletes the reply queue. Calls still
// waiting fail with ErrClosed. Prepared clients share the reply queue:
// close only the client NewClient returned.
func (c *Client) Close() error {
	s := c.shared
	s.mu.Lock()
	if s.closed.Swap(true) {
		s.mu.Unlock()
		return nil
	}
	consumer, replyQ := s.consumer, s.replyQ
	s.mu.Unlock()
	if consumer == nil {
		s.loops.Wait() // one that ended on its own may be cleaning up
		return nil
	}
	err := consumer.Close()
	s.loops.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, delErr := s.tr.DeleteQueue(ctx, replyQ); delErr != nil && !errors.Is(delErr, transport.ErrClosed) {
		err = errors.Join(err, delErr)
	}
	return err
}

const (
	contentType     = "application/json"
	contentEncoding = "utf-8"
)
