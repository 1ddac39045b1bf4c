package interop

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/switchyard-mq/switchyard/drivers/rabbit"
	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// caseTimeout bounds one test case's waits.
const caseTimeout = 30 * time.Second

// env is what a test shares with its Python peer on one stack: a virtual
// host of its own on the stack's broker, a Go transport on it, and the
// peer, both opened with the same URL (the stack's options in its query).
type env struct {
	stack brokertest.Stack
	vhost *brokertest.RabbitVHost
	url   string // the virtual host's URL with the stack's query (and the test's)
	tr    *transport.Transport
	peer  *Peer
	logs  *logRecorder

	versionOnce sync.Once
	version     string // the peer's oslo.messaging version (osloVersion)
	versionErr  error
}

// forEachStack runs body as a subtest of t for each stack, named after
// it, the stacks in parallel: RabbitMQ's (brokertest.Stacks) and the
// switchyard broker's with oslo.messaging 14 (brokertest.SwitchyardStack).
// Each body makes a virtual host of its own (newEnv), which isolates it.
func forEachStack(t *testing.T, body func(t *testing.T, stack brokertest.Stack)) {
	t.Helper()
	for _, stack := range append(brokertest.Stacks(), brokertest.SwitchyardStack()) {
		t.Run(stack.Name, func(t *testing.T) {
			t.Parallel()
			body(t, stack)
		})
	}
}

// newEnv makes a fresh virtual host on the stack's broker, opens a Go
// transport on it (logging into a recorder) and starts a Python peer of
// the stack on the same URL, the stack's query included: both sides run
// with the stack's options. Cleanup runs in reverse: the peer and the
// transport end before the virtual host is deleted.
func newEnv(t testing.TB, stack brokertest.Stack) *env {
	t.Helper()
	return newEnvQuery(t, stack, "")
}

// newEnvQuery is newEnv with query (options such as
// "amqp_durable_queues=true") added to the URL that both sides open.
func newEnvQuery(t testing.TB, stack brokertest.Stack, query string) *env {
	t.Helper()
	RequireStackPython(t, stack)
	vhost := stack.NewVHost(t)
	url := withQuery(stack.URL(vhost), query)
	logs := &logRecorder{}
	ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
	defer cancel()
	tr, err := transport.Open(ctx, url, transport.WithLogger(slog.New(logs)))
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return &env{stack: stack, vhost: vhost, url: url, tr: tr, peer: StartStackPeer(t, stack, url), logs: logs}
}

// withQuery returns url with query's options added to its own.
func withQuery(url, query string) string {
	switch {
	case query == "":
		return url
	case strings.Contains(url, "?"):
		return url + "&" + query
	default:
		return url + "?" + query
	}
}

// osloVersion returns the version of oslo.messaging that the peer runs,
// such as "18.3.0", asking it once.
func (e *env) osloVersion(t testing.TB) string {
	t.Helper()
	e.versionOnce.Do(func() {
		var versions map[string]string
		if err := e.peer.Do(testContext(t), "versions", nil, &versions); err != nil {
			e.versionErr = err
			return
		}
		e.version = versions["oslo.messaging"]
	})
	if e.versionErr != nil {
		t.Fatalf("the peer's oslo.messaging version: %v", e.versionErr)
	}
	return e.version
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), caseTimeout)
	t.Cleanup(cancel)
	return ctx
}

// uniqueName returns prefix with a random suffix, so that cases sharing a
// virtual host never share a queue.
func uniqueName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "_" + hex.EncodeToString(b[:])
}

// service is the Go server's endpoint: what a Python client calls. It
// records casts and request contexts in events.
type service struct {
	name   string
	events *eventLog
}

type valueArgs struct {
	Value any `json:"value"`
}

// Echo returns the value as it came: numbers keep their JSON text.
func (s *service) Echo(ctx context.Context, args valueArgs) (any, error) { return args.Value, nil }

type messageArgs struct {
	Message string `json:"message"`
}

// QuotaError is a Go endpoint's own error type; a Python caller sees its
// name as RemoteError.exc_type.
type QuotaError struct{ Msg string }

func (e *QuotaError) Error() string { return e.Msg }

// Fail returns a Go error a Python caller receives as RemoteError.
func (s *service) Fail(ctx context.Context, args messageArgs) (any, error) {
	return nil, fmt.Errorf("handling fail: %w", &QuotaError{Msg: args.Message})
}

// raiseArgs describe an exception, as a Python service defines it.
type raiseArgs struct {
	Module  string         `json:"module"`
	Class   string         `json:"class"`
	Message string         `json:"message"`
	Args    []any          `json:"args"` // absent: nil, so [message] is sent
	Kwargs  map[string]any `json:"kwargs"`
}

// Raise returns the exception its caller describes, as an endpoint raising
// a Python service's exceptions (peer_errors) would.
func (s *service) Raise(ctx context.Context, args raiseArgs) (any, error) {
	return nil, &rpc.RemoteError{Module: args.Module, Class: args.Class, Message: args.Message, Args: args.Args, Kwargs: args.Kwargs}
}

// Explode panics.
func (s *service) Explode(ctx context.Context, args messageArgs) (any, error) {
	panic(args.Message)
}

// FailValue returns an error a Python caller re-raises as ValueError.
func (s *service) FailValue(ctx context.Context, args messageArgs) (any, error) {
	return nil, &rpc.RemoteError{Class: "ValueError", Module: "builtins", Message: args.Message}
}

type sleepArgs struct {
	Seconds float64 `json:"seconds"`
}

// Sleep works for a while, or until the call's deadline.
func (s *service) Sleep(ctx context.Context, args sleepArgs) (string, error) {
	select {
	case <-time.After(time.Duration(args.Seconds * float64(time.Second))):
		return fmt.Sprintf("slept %g", args.Seconds), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Context records the caller's request context and returns it.
func (s *service) Context(ctx context.Context, _ struct{}) (rpc.RequestContext, error) {
	rc := rpc.RequestContextFrom(ctx)
	s.events.add("context", rc)
	return rc, nil
}

// Whoami returns this server's name.
func (s *service) Whoami(ctx context.Context, _ struct{}) (string, error) { return s.name, nil }

type tokenArgs struct {
	Token string `json:"token"`
}

// Record records a cast's token under this server's name.
func (s *service) Record(ctx context.Context, args tokenArgs) error {
	s.events.add("record", recorded{Server: s.name, Token: args.Token})
	return nil
}

type recorded struct {
	Server string `json:"server"`
	Token  string `json:"token"`
}

// startGoServer starts a Go RPC server for topic as server name, with the
// service at version 1.3 and opts, stopped when the test ends.
func startGoServer(t testing.TB, tr *transport.Transport, topic, name string, events *eventLog, opts ...rpc.ServerOption) *rpc.Server {
	t.Helper()
	srv, err := rpc.NewServer(tr, transport.Target{Topic: topic, Server: name},
		[]rpc.Endpoint{{Receiver: &service{name: name, events: events}, Version: "1.3"}}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(testContext(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Stop(ctx); err != nil {
			t.Errorf("stop Go server %s: %v", name, err)
		}
	})
	return srv
}

// eventLog collects what Go handlers received, by stream, and lets a test
// wait for it without sleeping.
type eventLog struct {
	mu      sync.Mutex
	streams map[string][]any
	changed chan struct{}
}

func newEventLog() *eventLog {
	return &eventLog{streams: map[string][]any{}, changed: make(chan struct{})}
}

func (l *eventLog) add(stream string, v any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.streams[stream] = append(l.streams[stream], v)
	close(l.changed)
	l.changed = make(chan struct{})
}

// wait returns stream's events once it has at least n.
func (l *eventLog) wait(ctx context.Context, stream string, n int) ([]any, error) {
	for {
		l.mu.Lock()
		events, changed := l.streams[stream], l.changed
		l.mu.Unlock()
		if len(events) >= n {
			return append([]any(nil), events...), nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return events, fmt.Errorf("%d of %d events on %s: %w", len(events), n, stream, ctx.Err())
		}
	}
}

// getChanged returns stream's events and a channel closed when any
// stream grows.
func (l *eventLog) getChanged(stream string) ([]any, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]any(nil), l.streams[stream]...), l.changed
}

func (l *eventLog) get(stream string) []any {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]any(nil), l.streams[stream]...)
}

// logRecorder is a slog.Handler keeping every record's message and
// attributes, to check what the Go side logged.
type logRecorder struct {
	mu      sync.Mutex
	records []string
	attrs   []slog.Attr
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Level.String() + " " + rec.Message)
	for _, a := range r.attrs {
		b.WriteString(" " + a.String())
	}
	rec.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	r.mu.Lock()
	r.records = append(r.records, b.String())
	r.mu.Unlock()
	return nil
}

func (r *logRecorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &sharedRecorder{root: r, attrs: append(append([]slog.Attr(nil), r.attrs...), attrs...)}
}

func (r *logRecorder) WithGroup(string) slog.Handler { return r }

// count returns how many records contain every one of parts.
func (r *logRecorder) count(parts ...string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
next:
	for _, rec := range r.records {
		for _, p := range parts {
			if !strings.Contains(rec, p) {
				continue next
			}
		}
		n++
	}
	return n
}

// sharedRecorder is a logRecorder with attributes, writing to the root.
type sharedRecorder struct {
	root  *logRecorder
	attrs []slog.Attr
}

func (s *sharedRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (s *sharedRecorder) Handle(ctx context.Context, rec slog.Record) error {
	rec = rec.Clone()
	rec.AddAttrs(s.attrs...)
	return s.root.Handle(ctx, rec)
}

func (s *sharedRecorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &sharedRecorder{root: s.root, attrs: append(append([]slog.Attr(nil), s.attrs...), attrs...)}
}

func (s *sharedRecorder) WithGroup(string) slog.Handler { return s }

// jsonValue is one JSON value of the echo tests: its text exactly as
// Python writes it, and the Python type it decodes to.
type jsonValue struct {
	name   string
	raw    string
	pyType string
}

// jsonValues covers every JSON type, with the numbers and strings that
// break naive codecs.
var jsonValues = []jsonValue{
	{"ascii", `"hello"`, "str"},
	{"empty_string", `""`, "str"},
	{"latin_and_cjk", `"h\u00e9llo w\u00f6rld \u2713 \u65e5\u672c\u8a9e"`, "str"},
	{"non_bmp", `"\ud83d\ude00 \ud834\udd1e"`, "str"},
	{"control_chars", `"a\u0000b\tc\nd\u001f\"\\"`, "str"},
	{"zero", `0`, "int"},
	{"negative_int", `-17`, "int"},
	{"two_pow_53_plus_1", `9007199254740993`, "int"},
	{"int64_max", `9223372036854775807`, "int"},
	{"int64_min", `-9223372036854775808`, "int"},
	{"beyond_int64", `123456789012345678901234567890`, "int"},
	{"float_two", `2.0`, "float"},
	{"float_small", `1e-07`, "float"},
	{"float_negative", `-3.5`, "float"},
	{"float_tenth", `0.1`, "float"},
	{"float_max", `1.7976931348623157e+308`, "float"},
	{"true", `true`, "bool"},
	{"false", `false`, "bool"},
	{"null", `null`, "NoneType"},
	{"empty_list", `[]`, "list"},
	{"empty_dict", `{}`, "dict"},
	{"nested_list", `[1, "two", 3.0, [null, true, [-1]], {"k": []}]`, "list"},
	{"nested_dict", `{"a": {"b": {"c": [1, 2.5, "x", 9223372036854775807]}}, "empty": {}, "\u00fc": null, "list": [false]}`, "dict"},
}

// decodeNumbers decodes JSON keeping numbers as json.Number.
func decodeNumbers(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}

// sameJSON reports whether two JSON texts hold the same value, numbers
// compared by their text (so 2.0 is not 2).
func sameJSON(t testing.TB, a, b []byte) bool {
	t.Helper()
	va, err := decodeNumbers(a)
	if err != nil {
		t.Fatalf("decode %s: %v", a, err)
	}
	vb, err := decodeNumbers(b)
	if err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

// raised is what a Python caller reports of an exception.
type raised struct {
	Class        string         `json:"class"`
	Module       string         `json:"module"`
	MRO          []string       `json:"mro"` // "module.qualname" of each class
	Str          string         `json:"str"`
	Args         []string       `json:"args"` // repr() of each
	ArgsJSON     any            `json:"args_json"`
	Kwargs       map[string]any `json:"kwargs"`
	ExcType      *string        `json:"exc_type"`
	Value        *string        `json:"value"`
	Traceback    []string       `json:"traceback"`
	IsValueError bool           `json:"is_value_error"`
	IsRemote     bool           `json:"is_remote_error"`
	IsTimeout    bool           `json:"is_timeout"`
}

// pyCall is the answer to a Python call command.
type pyCall struct {
	Result  json.RawMessage `json:"result"`
	Raised  *raised         `json:"raised"`
	Same    *bool           `json:"same"`
	Elapsed float64         `json:"elapsed"`
}

// call makes the peer call method on topic with fields (server, version,
// timeout, ctxt, expect, ...) and returns what it got.
func (e *env) call(ctx context.Context, t testing.TB, topic, method string, args map[string]any, fields map[string]any) pyCall {
	t.Helper()
	cmd := map[string]any{"topic": topic, "method": method, "args": args}
	if args == nil {
		cmd["args"] = map[string]any{}
	}
	for k, v := range fields {
		cmd[k] = v
	}
	var out pyCall
	if err := e.peer.Do(ctx, "call", cmd, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// mustSucceed fails t if the Python call raised.
func (c pyCall) mustSucceed(t testing.TB) pyCall {
	t.Helper()
	if c.Raised != nil {
		t.Fatalf("the Python call raised %s.%s: %s", c.Raised.Module, c.Raised.Class, c.Raised.Str)
	}
	return c
}

// mustRaise fails t unless the Python call raised.
func (c pyCall) mustRaise(t testing.TB) *raised {
	t.Helper()
	if c.Raised == nil {
		t.Fatalf("the Python call returned %s, want an exception", c.Result)
	}
	return c.Raised
}

func isTimeout(err error) bool { return errors.Is(err, transport.ErrTimeout) }

// Python's traceback lines (traceback.format_exception).
const (
	tbHeader    = "Traceback (most recent call last):\n"
	tbSeparator = "\nThe above exception was the direct cause of the following exception:\n\n"
)

// tbFrame is a frame of a Python traceback, with or without its source
// line (and, from Python 3.11, the line of carets under the part that
// failed).
var tbFrame = regexp.MustCompile(`^  File "[^"\n]+", line [0-9]+, in [^\n]+\n(    [^\n]*\n(    [ ~^]+\n)?)?$`)

// pythonShapeError reports how tb departs from the shape of Python's
// traceback.format_exception: blocks joined by the cause separator, each
// an exception line, preceded by the header and frames when it was raised.
func pythonShapeError(tb []string) error {
	if len(tb) == 0 {
		return errors.New("empty traceback")
	}
	inBlock := false // after a header, before the exception line
	for i, line := range tb {
		switch {
		case line == tbHeader && !inBlock:
			inBlock = true
			if i+1 >= len(tb) || !tbFrame.MatchString(tb[i+1]) {
				return fmt.Errorf("line %d: a header without a frame after it: %q", i, tb)
			}
		case inBlock && tbFrame.MatchString(line):
		case line == tbSeparator && i > 0 && !inBlock && i+1 < len(tb):
		case line != tbHeader && line != tbSeparator && strings.HasSuffix(line, "\n") && !tbFrame.MatchString(line):
			inBlock = false // an exception line
			if i+1 < len(tb) && tb[i+1] != tbSeparator {
				return fmt.Errorf("line %d: an exception line followed by %q, not a cause separator: %q", i, tb[i+1], tb)
			}
		default:
			return fmt.Errorf("line %d (%q) out of place in %q", i, line, tb)
		}
	}
	if inBlock {
		return fmt.Errorf("no exception line after the frames: %q", tb)
	}
	return nil
}

// checkJSON fails t unless got, marshalled, is the JSON value want.
func checkJSON(t testing.TB, what string, got any, want string) {
	t.Helper()
	b, err := json.Marshal(got)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !sameJSON(t, b, []byte(want)) {
		t.Fatalf("%s = %s, want %s", what, b, want)
	}
}

// stackOption reports whether the stack's query sets the boolean option
// name to true.
func stackOption(t testing.TB, stack brokertest.Stack, name string) bool {
	t.Helper()
	q, err := url.ParseQuery(stack.Query)
	if err != nil {
		t.Fatalf("%s: query %q: %v", stack.Name, stack.Query, err)
	}
	return q.Get(name) == "true"
}

// queueManagerName is a reply queue named by oslo.messaging 18's queue
// manager: reply_<hostname>:<processname>:<n>.
var queueManagerName = regexp.MustCompile(`^reply_[^:]+:[^:]+:[0-9]+$`)

// randomReplyName is a reply queue named without it: reply_<uuid4 hex>.
var randomReplyName = regexp.MustCompile(`^reply_[0-9a-f]{32}$`)

// checkStackQueues checks that the queues of topic's servers, their
// fanout, and the reply queue of process (the caller's program name: Go's
// or the peer's) are what the stack's options ask for: quorum topic and
// reply queues with rabbit_quorum_queue and rabbit_transient_quorum_queue,
// one stream for the fanout with rabbit_stream_fanout (else a queue per
// server), reply queues named by the queue manager with use_queue_manager.
// It shows that both sides of a cell ran with the stack's options.
func checkStackQueues(t *testing.T, e *env, topic string, servers []string, process string) {
	t.Helper()
	if e.stack.Broker.Embedded {
		// Nothing lists its queues; it has classic queues only, which is
		// what oslo's defaults, the stack's options, ask for.
		return
	}
	queues := e.vhost.Queues(t)
	typeOf := func(name string) string { s, _ := queues[name]["type"].(string); return s }
	want := "classic"
	if stackOption(t, e.stack, "rabbit_quorum_queue") {
		want = "quorum"
	}
	for _, name := range append([]string{topic}, prefixed(topic+".", servers)...) {
		if got := typeOf(name); got != want {
			t.Errorf("queue %s is %q, want a %s queue", name, got, want)
		}
	}
	var fanout, replies []string
	for name := range queues {
		switch {
		case strings.HasPrefix(name, topic+"_fanout"):
			fanout = append(fanout, name)
		case strings.HasPrefix(name, "reply_"):
			replies = append(replies, name)
		}
	}
	if stackOption(t, e.stack, "rabbit_stream_fanout") {
		if len(fanout) != 1 || fanout[0] != topic+"_fanout" || typeOf(fanout[0]) != "stream" {
			t.Errorf("fanout queues %v, want one stream, %s_fanout", fanout, topic)
		}
	} else if len(fanout) != len(servers) {
		t.Errorf("fanout queues %v, want one per server of %v", fanout, servers)
	}
	wantReply, replyType := randomReplyName, "classic"
	if stackOption(t, e.stack, "use_queue_manager") {
		wantReply = queueManagerName
	}
	if stackOption(t, e.stack, "rabbit_transient_quorum_queue") {
		replyType = "quorum"
	}
	declared := make([]string, 0, len(queues))
	for name := range queues {
		declared = append(declared, name+" ("+typeOf(name)+")")
	}
	slices.Sort(declared)
	t.Logf("%s: %s", e.stack.Name, strings.Join(declared, ", "))
	found := false
	for _, name := range replies {
		if !wantReply.MatchString(name) {
			t.Errorf("reply queue %s is not named as %s", name, wantReply)
		}
		if typeOf(name) != replyType {
			t.Errorf("reply queue %s is %q, want a %s queue", name, typeOf(name), replyType)
		}
		found = found || !stackOption(t, e.stack, "use_queue_manager") || strings.Contains(name, ":"+process+":")
	}
	if !found {
		t.Errorf("no reply queue of %s among %v", process, replies)
	}
}

// prefixed returns each of names after prefix.
func prefixed(prefix string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = prefix + n
	}
	return out
}
