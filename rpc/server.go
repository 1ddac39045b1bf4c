package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/switchyard-mq/switchyard/internal/messaging"
	"github.com/switchyard-mq/switchyard/internal/oslo"
	"github.com/switchyard-mq/switchyard/transport"
)

// DefaultMaxConcurrency bounds a server's concurrent handlers unless
// WithMaxConcurrency says otherwise: oslo.messaging's
// executor_thread_pool_size.
const DefaultMaxConcurrency = 64

// ServerOption configures a Server.
type ServerOption func(*Server)

// WithMaxConcurrency bounds how many requests are handled at once, each
// on the goroutine that received it: goroutines start as requests come, up
// to n, and end after a while without requests, but one per queue. A
// request is acknowledged when a handler starts on it; while n run,
// further requests wait unacknowledged (in the queue, in the consumers'
// prefetch of n, or at most one per queue in the server's hand), so that
// other servers on the topic take the queue's and a server that dies or
// stops gives back the ones it held.
func WithMaxConcurrency(n int) ServerOption { return func(s *Server) { s.maxConcurrency = n } }

// WithAccessPolicy restricts which endpoint methods may be called.
func WithAccessPolicy(p AccessPolicy) ServerOption { return func(s *Server) { s.policy = p } }

// WithServerErrors makes the server send the errors registered in reg
// (see ErrorRegistry) under their module and class, with an error type's
// fields as kwargs, so that a client with the same registry (WithErrors)
// rebuilds them. Without it, a Go error is named by its Go type.
func WithServerErrors(reg *ErrorRegistry) ServerOption {
	return func(s *Server) { s.dispatch.errors = reg }
}

// ServerStats counts what a server did with the requests it received.
type ServerStats struct {
	Received   uint64 // requests taken from the queues
	Handled    uint64 // requests whose method ran (successfully or not)
	Failed     uint64 // of those, calls answered with a failure
	Rejected   uint64 // undecodable requests rejected to the broker
	Duplicates uint64 // repeats of a recent _unique_id, dropped
	// ConsumersLost counts the consumers that ended while the server ran
	// (the broker cancelled one, a queue was deleted): each is consumed
	// again, its topology declared first.
	ConsumersLost uint64
	// Unconsumed is how many of the server's queues are not consumed
	// right now, waiting to be consumed again: a server with some is
	// deaf to part of its requests.
	Unconsumed int
}

// Server consumes RPC requests for one target and runs them on its
// endpoints, as an oslo.messaging RPC server does: it consumes the topic
// queue (shared by every server on the topic), its own topic.server queue,
// and a private fanout queue. Requests are acknowledged as their handling
// begins (at most once, as oslo does) and run concurrently, up to a bound;
// a call's reply goes back to the caller's reply queue.
type Server struct {
	tr             *transport.Transport
	target         transport.Target
	topo           messaging.Topology
	logger         *slog.Logger
	dispatch       dispatcher
	inst           instruments
	maxConcurrency int
	policy         AccessPolicy
	mandatory      bool // the transport has CapMandatory: replies are mandatory

	mu          sync.Mutex
	state       serverState
	requests    *messaging.WorkerPool[job] // receives from the server's queues and runs the requests
	fanoutQueue string                     // the server's own fanout queue, deleted at Stop; "" for a shared stream
	// fanoutDecl is the fanout queue as declared (with its name), and
	// fanoutShared whether other servers consume it too; resumeMu
	// serialises the declarations of consumers that resume at once.
	fanoutDecl   *transport.Queue
	fanoutShared bool
	resumeMu     sync.Mutex
	stopCtx      context.Context // cancelled when Stop gives up waiting
	stopCancel   context.CancelFunc
	stopping     chan struct{} // closed when Stop begins
	drained      chan struct{} // closed when the handlers have all returned after Stop
	// backgroundReplies holds a token per reply retried in the background.
	backgroundReplies chan struct{}
	handlers          sync.WaitGroup            // replies to malformed calls and replies retried in the background
	recent            messaging.DuplicateFilter // the _unique_ids taken last
	stats             struct{ received, handled, failed, rejected, duplicates atomic.Uint64 }
	// workerIdle is how long a goroutine of the pool waits for a request
	// beside another before it ends.
	workerIdle time.Duration
}

type serverState int

const (
	stateNew serverState = iota
	stateRunning
	stateStopped
)

// NewServer returns a server for target (Topic and Server required) over
// the given endpoints. It logs a warning for each exported method of an
// endpoint that it cannot expose, and fails if an endpoint exposes none
// (see Endpoint). It declares and consumes nothing until Start.
func NewServer(tr *transport.Transport, target transport.Target, endpoints []Endpoint, opts ...ServerOption) (*Server, error) {
	if tr == nil {
		return nil, fmt.Errorf("rpc server: %w: no transport", transport.ErrInvalid)
	}
	if err := target.Validate(); err != nil {
		return nil, fmt.Errorf("rpc server: %w", err)
	}
	if target.Server == "" {
		return nil, fmt.Errorf("rpc server: %w: target %s has no server name", transport.ErrInvalid, target)
	}
	if len(endpoints) == 0 {
		return nil, fmt.Errorf("rpc server: %w: no endpoints", transport.ErrInvalid)
	}
	topo, err := messaging.NewTopology(tr)
	if err != nil {
		return nil, fmt.Errorf("rpc server on %s: %w", tr, err)
	}
	s := &Server{
		tr: tr, target: target, topo: topo, maxConcurrency: DefaultMaxConcurrency, workerIdle: workerIdleTimeout,
		mandatory: tr.Capabilities().Has(transport.CapMandatory),
		logger:    tr.Logger().With("component", "rpc.server", "target", target.String()),
		inst:      newInstruments(tr, "switchyard.rpc.server.duration", "Time an RPC server spent running a request."),
	}
	for _, opt := range opts {
		opt(s)
	}
	if s.maxConcurrency < 1 {
		return nil, fmt.Errorf("rpc server: %w: max concurrency %d", transport.ErrInvalid, s.maxConcurrency)
	}
	for _, ep := range endpoints {
		e, rejected, err := newEndpoint(ep, s.policy)
		if err != nil {
			return nil, fmt.Errorf("rpc server: %w", err)
		}
		for _, u := range rejected {
			s.logger.WarnContext(context.Background(), "endpoint method not exposed",
				"endpoint", fmt.Sprintf("%T", ep.Receiver), "method", u.method, "reason", u.reason)
		}
		s.dispatch.endpoints = append(s.dispatch.endpoints, e)
	}
	return s, nil
}

// Start declares the server's exchanges and queues, as oslo.messaging's
// rabbit driver names them, and starts consuming. A server starts once.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case stateRunning:
		return fmt.Errorf("rpc server %s: %w: already started", s.target, transport.ErrInvalid)
	case stateStopped:
		return fmt.Errorf("rpc server %s: %w: stopped; a server does not start again (make a new one)", s.target, transport.ErrInvalid)
	}
	consumers, err := s.declareAndConsume(ctx)
	if err != nil {
		for _, c := range consumers {
			_ = c.Close()
		}
		return fmt.Errorf("rpc server %s: start: %w", s.target, err)
	}
	s.state = stateRunning
	s.stopCtx, s.stopCancel = context.WithCancel(context.Background())
	s.stopping, s.drained = make(chan struct{}), make(chan struct{})
	s.backgroundReplies = make(chan struct{}, maxBackgroundReplies)
	// The goroutine that receives a request runs it, rather than a goroutine
	// per request or a hand-off to a worker: each keeps its grown stack and
	// its own context. They start on demand, up to maxConcurrency, and end
	// when idle, so that an idle server costs one per queue (a process may
	// run a thousand servers). A request is acked when it starts to run,
	// so while maxConcurrency run the rest stay unacked in the queue (and
	// the consumer's prefetch), where other servers on the topic can take
	// them.
	s.requests = messaging.NewWorkerPool(consumers, messaging.WorkerPoolConfig[job]{
		Accept: s.accept, Handle: s.runJob, Context: s.stopCtx,
		MaxConcurrency: s.maxConcurrency, IdleTimeout: s.workerIdle,
		Stopping: s.stopping, Resume: s.resume, Logger: s.logger, What: "requests",
	})
	s.logger.InfoContext(ctx, "rpc server started", "queues", queueNames(consumers))
	return nil
}

// declareAndConsume declares the server's exchanges, queues and bindings
// and consumes its three queues; on error it returns the consumers it
// started, for the caller to close.
func (s *Server) declareAndConsume(ctx context.Context) ([]*transport.Consumer, error) {
	queues, err := s.declare(ctx)
	if err != nil {
		return nil, err
	}
	var consumers []*transport.Consumer
	for _, name := range queues {
		c, err := s.consume(ctx, name)
		if err != nil {
			return consumers, err
		}
		consumers = append(consumers, c)
	}
	return consumers, nil
}

// declare declares the server's exchanges, its topic, server and fanout
// queues and their bindings, and returns the queues' names. The fanout
// queue's declaration is chosen once (its name may be unique to the
// server), and declared the same again when a consumer resumes.
func (s *Server) declare(ctx context.Context) ([]string, error) {
	t := s.target
	exchange := s.topo.ExchangeName(t)
	if err := s.topo.DeclareExchange(ctx, s.tr, s.topo.Exchange(exchange)); err != nil {
		return nil, err
	}
	queues := []string{oslo.TopicQueue(t.Topic), oslo.ServerQueue(t.Topic, t.Server)}
	for _, name := range queues {
		if _, err := s.topo.DeclareQueue(ctx, s.tr, s.topo.SharedQueue(name)); err != nil {
			return nil, err
		}
		if err := s.tr.Bind(ctx, transport.Binding{Exchange: exchange, Queue: name, Key: name}); err != nil {
			return nil, err
		}
	}
	fanout := s.topo.FanoutExchange(t.Topic)
	if err := s.topo.DeclareExchange(ctx, s.tr, fanout); err != nil {
		return nil, err
	}
	if s.fanoutDecl == nil {
		q, shared, err := s.topo.FanoutQueue(t.Topic)
		if err != nil {
			return nil, err
		}
		s.fanoutDecl, s.fanoutShared = &q, shared
	}
	fanoutQueue, err := s.topo.DeclareQueue(ctx, s.tr, *s.fanoutDecl)
	if err != nil {
		return nil, err
	}
	s.fanoutDecl.Name = fanoutQueue
	if !s.fanoutShared {
		s.fanoutQueue = fanoutQueue // the server's own: deleted when it stops
	}
	if err := s.tr.Bind(ctx, transport.Binding{Exchange: fanout.Name, Queue: fanoutQueue, Key: t.Topic}); err != nil {
		return nil, err
	}
	return append(queues, fanoutQueue), nil
}

func (s *Server) consume(ctx context.Context, queue string) (*transport.Consumer, error) {
	return s.tr.Consume(ctx, queue, transport.ConsumeOptions{Prefetch: s.maxConcurrency})
}

// resume consumes queue again after its consumer ended unasked (the
// broker cancelled it, the queue was deleted): it declares the server's
// topology again, as Start did, first.
func (s *Server) resume(ctx context.Context, queue string) (*transport.Consumer, error) {
	s.resumeMu.Lock()
	_, err := s.declare(ctx)
	s.resumeMu.Unlock()
	if err != nil {
		return nil, err
	}
	return s.consume(ctx, queue)
}

func queueNames(consumers []*transport.Consumer) []string {
	names := make([]string, len(consumers))
	for i, c := range consumers {
		names[i] = c.Queue()
	}
	return names
}

// job is an accepted request and its delivery.
type job struct {
	d   *transport.Delivery
	req *oslo.Request
}

// workerIdleTimeout is how long a goroutine of the pool waits for a
// request, beside another waiting on its queue, before it ends.
const workerIdleTimeout = 10 * time.Second

// runJob runs an accepted request, unless take finds it settled or a
// repeat.
func (s *Server) runJob(ctx context.Context, j job) {
	if s.take(j.d, j.req) {
		s.handle(ctx, j.d, j.req)
	}
}

// take acknowledges a request as its handling begins (before it runs, as
// oslo does) and reports whether to run it: not if the broker already
// took it back with its consumer, nor if it repeats a recent _unique_id.
func (s *Server) take(d *transport.Delivery, req *oslo.Request) bool {
	ctx := d.TraceContext(context.Background())
	if err := d.Ack(); err != nil {
		if errors.Is(err, transport.ErrClosed) {
			// Its consumer closed (the server is stopping, or the
			// connection dropped): the broker gives it to a server again.
			s.logger.DebugContext(ctx, "request returned to its queue before it ran", "method", req.Method, "msg_id", req.MsgID, "unique_id", req.UniqueID, "err", err)
			return false
		}
		s.logger.WarnContext(ctx, "acknowledging a request failed; it may be delivered again", "method", req.Method, "msg_id", req.MsgID, "unique_id", req.UniqueID, "err", err)
	}
	if !s.recent.Admit(req.UniqueID) {
		s.stats.duplicates.Add(1)
		s.logger.DebugContext(ctx, "duplicate request dropped", "method", req.Method, "msg_id", req.MsgID, "unique_id", req.UniqueID)
		return false
	}
	return true
}

// accept counts and decodes a delivery, on its receive loop: a request
// goes on to a worker, unsettled; what cannot be decoded is rejected. A
// call decoded well enough to answer, but malformed (args not an object,
// no method), is acked and answered with the failure a Python server
// sends.
func (s *Server) accept(d *transport.Delivery) (job, bool) {
	s.stats.received.Add(1)
	ctx := d.TraceContext(context.Background())
	req, err := decodeRequest(d)
	if req != nil {
		identify(d, req)
	}
	if errors.Is(err, oslo.ErrArgsNotObject) && req.Method != "" {
		// Python dispatches first and fails on the args after: an unknown
		// method or version wins. run sees the args are not an object.
		err = nil
	}
	if err == nil {
		return job{d, req}, true
	}
	if req == nil || !req.IsCall() || req.ReplyQ == "" {
		s.stats.rejected.Add(1)
		s.logger.ErrorContext(ctx, "malformed request rejected", "exchange", d.Exchange, "routing_key", d.RoutingKey,
			"content_type", d.ContentType, "err", err, "body", truncate(d.Body, 200))
		if rerr := d.Reject(); rerr != nil {
			s.logger.ErrorContext(ctx, "rejecting a malformed request failed", "err", rerr)
		}
		return job{}, false
	}
	if !s.take(d, req) {
		return job{}, false
	}
	s.stats.rejected.Add(1)
	s.logger.ErrorContext(ctx, "malformed call answered with a failure", "method", req.Method, "msg_id", req.MsgID, "reply_queue", req.ReplyQ, "err", err)
	s.answerMalformed(ctx, req, err)
	return job{}, false
}

// answerMalformed sends the failure for a call too malformed to run. (A
// function of its own so that accept's variables stay on its stack.)
// ctx carries the request's trace, for the reply's.
func (s *Server) answerMalformed(ctx context.Context, req *oslo.Request, err error) {
	replyCtx := trace.ContextWithSpanContext(s.stopCtx, trace.SpanContextFromContext(ctx))
	s.handlers.Add(1)
	go func() {
		defer s.handlers.Done()
		failure := oslo.NewFailure("builtins", "ValueError", "malformed request: "+err.Error())
		s.reply(replyCtx, req, &oslo.Reply{Failure: failure, Ending: true}, s.logger)
	}()
}

// identify gives a delivery the ids of the request it carries, where its
// properties name none (oslo sends its ids in the body): its settle and
// process spans then name them as messaging.message.id (_unique_id) and
// messaging.message.conversation_id (_msg_id).
func identify(d *transport.Delivery, req *oslo.Request) {
	if d.MessageID == "" {
		d.MessageID = req.UniqueID
	}
	if d.CorrelationID == "" {
		d.CorrelationID = req.MsgID
	}
}

// decodeRequest decodes a delivery's body; on error the request may still
// be returned, partly decoded (see oslo.DecodeRequest).
func decodeRequest(d *transport.Delivery) (*oslo.Request, error) {
	if ct := d.ContentType; ct != "" && ct != contentType {
		return nil, fmt.Errorf("content type %q is not %s", ct, contentType)
	}
	body, err := oslo.Decompress(d.Headers, d.Body)
	if err != nil {
		return nil, err
	}
	return oslo.UnwrapRequest(body)
}

// handle runs one request and answers it if it is a call. It logs the
// request at debug level and a failure at error level, with the request's
// ids and, through the context, its trace.
func (s *Server) handle(parent context.Context, d *transport.Delivery, req *oslo.Request) {
	handlerCtx := s.handlerContext(parent, d, req)
	defer handlerCtx.end()
	logger := s.logger

	processCtx, endProcess := d.StartProcess(handlerCtx)
	ctx, end := s.inst.start(processCtx, trace.SpanKindServer, s.target, req.Method)
	annotate(ctx, req.UniqueID, req.MsgID)
	kind := "cast"
	if req.IsCall() {
		kind = "call"
	}
	if logger.Enabled(ctx, slog.LevelDebug) { // spares the hot path the arguments' allocations
		logger.DebugContext(ctx, "request", "kind", kind, "method", req.Method, "msg_id", req.MsgID,
			"unique_id", req.UniqueID, "reply_queue", req.ReplyQ, "namespace", req.Namespace, "version", req.Version)
	}
	var stopHeartbeats func()
	if req.IsCall() {
		stopHeartbeats = s.startHeartbeats(ctx, req, logger)
	}
	result, failure := s.run(ctx, req)
	var err error
	if failure != nil {
		err = &RemoteError{Class: failure.Class, Module: failure.Module, Message: failure.Message}
		logger.ErrorContext(ctx, kind+" failed", "method", req.Method, "msg_id", req.MsgID, "unique_id", req.UniqueID,
			"class", failure.Class, "module", failure.Module, "err", failure.Message)
	}
	end(err)
	endProcess(err)
	s.stats.handled.Add(1)
	if stopHeartbeats != nil {
		stopHeartbeats()
	}
	if !req.IsCall() {
		return
	}
	if failure != nil {
		s.stats.failed.Add(1)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// The call's timeout has passed since the request arrived, so the
		// caller stopped waiting: a reply would only be dropped.
		logger.DebugContext(ctx, "call outlived its timeout; no reply sent", "method", req.Method, "msg_id", req.MsgID)
		return
	}
	replyCtx := parent
	if s.inst.tracer != nil {
		// The reply's publish span joins the handler's trace.
		replyCtx = trace.ContextWithSpanContext(parent, trace.SpanContextFromContext(ctx))
	}
	s.reply(replyCtx, req, &oslo.Reply{Result: result, Failure: failure, Ending: true}, logger)
}

// handlerContext carries the caller's request context, and the call's
// deadline: the request's expiration, oslo's call timeout.
func (s *Server) handlerContext(ctx context.Context, d *transport.Delivery, req *oslo.Request) *lazyContext {
	rc, err := messaging.DecodeRequestContext(req.Context)
	if err != nil {
		s.logger.WarnContext(d.TraceContext(ctx), "request context dropped", "method", req.Method, "msg_id", req.MsgID, "err", err)
	}
	var deadline time.Time
	if d.Expiration > 0 {
		deadline = time.Now().Add(d.Expiration)
	}
	return newLazyContext(ctx, deadline, rc)
}

func (s *Server) run(ctx context.Context, req *oslo.Request) (result []byte, failure *oslo.Failure) {
	// Whatever a peer sends, a bug in dispatch must fail one request,
	// not the process (invoke recovers the handler's own panics).
	defer func() {
		if p := recover(); p != nil {
			result, failure = nil, panicFailure(req.Method, p)
		}
	}()
	m, failure := s.dispatch.find(req)
	if failure != nil {
		return nil, failure
	}
	if !isJSONObject(req.Args) {
		return nil, oslo.ArgsNotObject(req.Args)
	}
	return m.invoke(ctx, req.Args, s.dispatch.errors)
}

// startHeartbeats sends call-monitor heartbeats while a call runs, only
// when the caller asked for them with _timeout (a heartbeat to a caller
// that did not ask crashes a Python client).
func (s *Server) startHeartbeats(ctx context.Context, req *oslo.Request, logger *slog.Logger) (stop func()) {
	if req.Timeout == nil {
		return func() {}
	}
	// Every int(_timeout)/2 seconds, and none under a second, as a
	// Python server does.
	interval := time.Duration(int64(*req.Timeout)) * time.Second / 2
	if *req.Timeout >= 1<<31 || interval < time.Second {
		logger.WarnContext(ctx, "call monitor timeout out of range (under 2 s); no heartbeats sent", "timeout_s", *req.Timeout)
		return func() {}
	}
	// Stopping cancels a heartbeat in flight too (one waiting for a
	// connection to come back), so that it never holds up the reply.
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		for {
			select {
			case <-ticker.C:
				s.publishReply(ctx, req, &oslo.Reply{}, logger, false)
			case <-ctx.Done():
				return
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

// reply sends a call's final reply. If the caller's queue is missing, the
// retries run on a goroutine of their own (up to maxBackgroundReplies at
// once), so that a caller gone away does not hold a worker for a minute.
func (s *Server) reply(ctx context.Context, req *oslo.Request, r *oslo.Reply, logger *slog.Logger) {
	s.publishReply(ctx, req, r, logger, true)
}

// missingReplyQueueRetry is oslo's kombu_missing_consumer_retry_timeout:
// how long a reply to a missing queue is retried.
const missingReplyQueueRetry = 60 * time.Second

// maxBackgroundReplies bounds the replies a server retries in the
// background; past it, the worker retries them itself.
const maxBackgroundReplies = 1024

// publishReply sends one reply (or heartbeat) to the caller's queue
// through the default exchange. A missing reply queue (the caller not
// consuming yet, or reconnecting) is retried every 250 ms for up to
// missingReplyQueueRetry, as oslo does, in the background if allowed and
// there is room. ctx is the worker's: it ends only when Stop gives up
// waiting.
func (s *Server) publishReply(ctx context.Context, req *oslo.Request, r *oslo.Reply, logger *slog.Logger, background bool) {
	r.MsgID = req.MsgID
	var retryUntil <-chan time.Time
	for {
		r.UniqueID = oslo.NewID()
		body, err := oslo.WrapReply(r)
		if err != nil {
			logger.ErrorContext(ctx, "encoding a reply failed", "method", req.Method, "msg_id", req.MsgID, "err", err)
			r = &oslo.Reply{Failure: oslo.NewFailure("builtins", "TypeError", err.Error()), Ending: r.Ending, MsgID: req.MsgID}
			continue
		}
		// Mandatory, as oslo's replies are, so that a missing reply queue
		// is retried; a reply whose confirm is outstanding when the
		// connection drops is published again, and the caller drops
		// duplicates.
		msg := transport.Message{Body: body, ContentType: contentType, ContentEncoding: contentEncoding, Persistent: s.topo.Persistent(),
			Mandatory: s.mandatory}
		err = s.tr.Publish(ctx, "", req.ReplyQ, msg)
		if err == nil {
			return
		}
		if !r.Ending && errors.Is(err, transport.ErrUnroutable) {
			// A heartbeat is not retried: the next one replaces it, and
			// retrying would hold the call for a caller gone away.
			logger.DebugContext(ctx, "heartbeat not delivered: the reply queue is missing", "reply_queue", req.ReplyQ, "msg_id", req.MsgID)
			return
		}
		if !errors.Is(err, transport.ErrUnroutable) || ctx.Err() != nil {
			level := slog.LevelError
			if !r.Ending && ctx.Err() != nil {
				// A heartbeat cut short by the end of its call: nobody
				// waits for it any more.
				level = slog.LevelDebug
			}
			logger.Log(ctx, level, "reply not sent", "reply_queue", req.ReplyQ, "msg_id", req.MsgID, "heartbeat", !r.Ending, "err", err)
			return
		}
		if background && s.retryInBackground(ctx, req, *r, logger) {
			return
		}
		if retryUntil == nil {
			deadline := time.NewTimer(missingReplyQueueRetry)
			defer deadline.Stop()
			retryUntil = deadline.C
		}
		select {
		case <-time.After(250 * time.Millisecond):
		case <-retryUntil:
			logger.WarnContext(ctx, "reply queue missing; reply abandoned", "reply_queue", req.ReplyQ, "msg_id", req.MsgID)
			return
		case <-s.stopping:
			// Waiting up to a minute for a caller's queue to come back
			// would hold up Stop; the caller times out as it would if
			// this server had died.
			logger.WarnContext(ctx, "reply queue missing and the server is stopping; reply abandoned", "reply_queue", req.ReplyQ, "msg_id", req.MsgID)
			return
		case <-ctx.Done():
			logger.WarnContext(ctx, "server stopping; reply abandoned", "reply_queue", req.ReplyQ, "msg_id", req.MsgID)
			return
		}
	}
}

// retryInBackground retries a reply on a goroutine of its own, if there
// is room for one. (The goroutine takes a copy of the reply, so that the
// reply of a call that needs no retry stays on its worker's stack.)
func (s *Server) retryInBackground(ctx context.Context, req *oslo.Request, r oslo.Reply, logger *slog.Logger) bool {
	select {
	case s.backgroundReplies <- struct{}{}:
		s.handlers.Go(func() {
			defer func() { <-s.backgroundReplies }()
			s.publishReply(ctx, req, &r, logger, false)
		})
		return true
	default: // no room: the caller retries
		return false
	}
}

// Stop stops consuming (requests not yet running go back to the queues
// for other servers), waits for the running requests to finish and reply,
// and deletes the server's fanout queue. A reply whose caller's queue is
// missing is no longer retried once Stop begins. If ctx ends first, the
// handlers' contexts are cancelled and Stop returns ctx's error without
// waiting further. Stop is idempotent; a later Stop waits, within its own
// ctx, for the handlers the first one waited for. A stopped server does
// not start again.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	switch s.state {
	case stateNew:
		s.state = stateStopped
		s.mu.Unlock()
		return nil
	case stateStopped:
		drained := s.drained
		s.mu.Unlock()
		if drained == nil { // stopped before it started
			return nil
		}
		// Another Stop is under way, or gave up waiting: wait for the
		// handlers as it does.
		return s.waitDrained(ctx)
	}
	s.state = stateStopped
	close(s.stopping)
	s.mu.Unlock()
	// The pool takes nothing more once stopping; its running requests
	// finish.
	s.requests.Close()
	go func() { s.requests.Wait(); s.handlers.Wait(); close(s.drained) }()
	err := s.waitDrained(ctx)
	s.stopCancel()
	if s.fanoutQueue != "" {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, derr := s.tr.DeleteQueue(dctx, s.fanoutQueue); derr != nil && !errors.Is(derr, transport.ErrClosed) {
			err = errors.Join(err, fmt.Errorf("rpc server %s: delete fanout queue: %w", s.target, derr))
		}
	}
	s.logger.InfoContext(ctx, "rpc server stopped")
	return err
}

// waitDrained waits for the handlers to return after Stop, or for ctx.
func (s *Server) waitDrained(ctx context.Context) error {
	select {
	case <-s.drained:
		return nil
	default:
	}
	select {
	case <-s.drained:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("rpc server %s: stop: handlers still running: %w", s.target, ctx.Err())
	}
}

// Stats returns the server's counters so far.
func (s *Server) Stats() ServerStats {
	st := ServerStats{
		Received: s.stats.received.Load(), Handled: s.stats.handled.Load(), Failed: s.stats.failed.Load(),
		Rejected: s.stats.rejected.Load(), Duplicates: s.stats.duplicates.Load(),
	}
	s.mu.Lock()
	requests := s.requests
	s.mu.Unlock()
	if requests != nil {
		st.ConsumersLost, st.Unconsumed = requests.Lost(), requests.Unconsumed()
	}
	return st
}
