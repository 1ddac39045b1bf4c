package rpc

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strings"

	"github.com/switchyard-mq/switchyard/internal/flatjson"
	"github.com/switchyard-mq/switchyard/internal/oslo"
	"github.com/switchyard-mq/switchyard/transport"
)

// Endpoint is a Go value whose methods a Server exposes as RPC methods.
//
// Every exported method of Receiver's method set is exposed when it has
// one of these shapes, where Args is a type JSON can decode the request's
// keyword arguments (a JSON object) into: a struct with json tags, a map,
// json.RawMessage, any, a pointer to one of them, or a json.Unmarshaler;
// and Result any type JSON can encode:
//
//	func (e *Compute) Start(ctx context.Context, args StartArgs) (Result, error)
//	func (e *Compute) Stop(ctx context.Context, args StopArgs) error   // replies null
//	func (e *Compute) Ping(ctx context.Context) (Result, error)        // takes no arguments
//	func (e *Compute) Reset(ctx context.Context) error
//
// A method without Args ignores the request's keyword arguments, as an
// Args struct ignores those it has no field for. Every method of these
// shapes is exposed, a Close(ctx) error as well: restrict what is exposed
// with WithAccessPolicy, or give the endpoint a type of its own.
//
// NewServer checks every exported method the access policy allows, and
// logs a warning for each that cannot be exposed, saying why: another
// shape (no context.Context first, more than one Args, no error last, an
// Args JSON cannot decode an object into, a Result JSON cannot encode), or
// a method with a pointer receiver on a Receiver that is not a pointer
// ("register a pointer").
// A warning rather than an error, because endpoint types often have
// exported methods that are not RPC methods (String, helpers); NewServer
// fails, listing the reasons, when an endpoint exposes no method at all or
// Names maps to a method that is not exposed.
//
// Requests name methods the oslo.messaging way, in snake_case
// ("start_instance"); a request matches the Go method whose name equals it
// once case and underscores are ignored (StartInstance), unless Names maps
// it explicitly.
type Endpoint struct {
	// Receiver is the value whose methods are exposed, usually a pointer.
	Receiver any
	// Namespace must equal a request's namespace for the request to reach
	// this endpoint; empty matches requests without one.
	Namespace string
	// Version is the API version this endpoint implements, "major.minor"
	// (default "1.0"). It serves requests for the same major version and a
	// minor version up to its own.
	Version string
	// Names maps request method names to Go method names, for names the
	// case-and-underscore rule does not match.
	Names map[string]string
}

// AccessPolicy decides which of an endpoint's methods may be called, by Go
// method name. The default allows every exported method of a shape an
// Endpoint exposes. NewServer does not report the methods a policy
// excludes.
type AccessPolicy func(ep Endpoint, goMethod string) bool

// ExposeOnly is an AccessPolicy allowing only the named Go methods, like
// oslo.messaging's explicit access policy.
func ExposeOnly(goMethods ...string) AccessPolicy {
	return func(_ Endpoint, m string) bool {
		for _, allowed := range goMethods {
			if m == allowed {
				return true
			}
		}
		return false
	}
}

// endpoint is an Endpoint prepared for dispatch.
type endpoint struct {
	Endpoint
	major, minor, rev int
	methods           map[string]*method // by normalized name
	explicit          map[string]*method // by request name, from Names
	exact             map[string]*method // by Go, lower-case and snake_case name
}

type method struct {
	name string
	// fn is the method's function, called with recv as its first
	// argument: calling a bound method value would allocate per call.
	fn, recv  reflect.Value
	args      reflect.Type // nil for a method that takes none
	hasResult bool
	// argsDecoder and resultEncoder are package flatjson's codecs for
	// flat struct arguments and results, nil for other types.
	argsDecoder   *flatjson.StructDecoder
	resultEncoder *flatjson.StructEncoder
	// frame is the method's frame in the traceback of the errors it
	// returns (Go errors carry no stack): its file, the line where its
	// code begins, and its function name.
	frame string
}

var (
	ctxType   = reflect.TypeFor[context.Context]()
	errorType = reflect.TypeFor[error]()
)

// normalize folds a method name for matching: start_instance and
// StartInstance both become startinstance.
func normalize(name string) string {
	return strings.ToLower(strings.ReplaceAll(name, "_", ""))
}

// unexposed is an exported method of an endpoint that cannot be exposed,
// and why.
type unexposed struct {
	method, reason string
}

// newEndpoint prepares ep for dispatch, and returns the exported methods
// allowed by the policy that cannot be exposed.
func newEndpoint(ep Endpoint, allowed AccessPolicy) (*endpoint, []unexposed, error) {
	if ep.Receiver == nil {
		return nil, nil, fmt.Errorf("%w: endpoint with a nil receiver", transport.ErrInvalid)
	}
	e := &endpoint{Endpoint: ep, methods: map[string]*method{}, explicit: map[string]*method{}, exact: map[string]*method{}}
	version := ep.Version
	if version == "" {
		version = "1.0"
	}
	var err error
	if e.major, e.minor, e.rev, err = parseVersion(version); err != nil {
		return nil, nil, err
	}
	v := reflect.ValueOf(ep.Receiver)
	byGoName := map[string]*method{}
	var rejected []unexposed
	for i := range v.NumMethod() {
		m := v.Type().Method(i)
		if allowed != nil && !allowed(ep, m.Name) {
			continue
		}
		args, hasResult, reason := methodShape(m.Type)
		if reason != "" {
			rejected = append(rejected, unexposed{m.Name, reason})
			continue
		}
		md := &method{name: m.Name, fn: m.Func, recv: v, args: args, hasResult: hasResult,
			frame: methodFrame(v.Type(), m.Name)}
		if args != nil {
			md.argsDecoder = flatjson.NewStructDecoder(args)
		}
		if hasResult {
			md.resultEncoder = flatjson.NewStructEncoder(m.Type.Out(0))
		}
		byGoName[m.Name] = md
		key := normalize(m.Name)
		if other, dup := e.methods[key]; dup {
			return nil, nil, fmt.Errorf("%w: endpoint %T: methods %s and %s match the same request names; map one with Names",
				transport.ErrInvalid, ep.Receiver, other.name, m.Name)
		}
		e.methods[key] = md
		// The common spellings, so that lookup rarely needs to normalize.
		for _, name := range []string{m.Name, strings.ToLower(m.Name), snakeCase(m.Name)} {
			e.exact[name] = md
		}
	}
	rejected = append(rejected, pointerMethods(v.Type(), ep, allowed)...)
	slices.SortFunc(rejected, func(a, b unexposed) int { return strings.Compare(a.method, b.method) })
	for wire, goName := range ep.Names {
		if _, ok := byGoName[goName]; ok {
			continue
		}
		why := "which is not an exported method"
		if i := slices.IndexFunc(rejected, func(u unexposed) bool { return u.method == goName }); i >= 0 {
			why = "which cannot be exposed: " + rejected[i].reason
		} else if _, ok := v.Type().MethodByName(goName); ok {
			why = "which the access policy does not allow"
		}
		return nil, nil, fmt.Errorf("%w: endpoint %T: Names maps %q to %s, %s", transport.ErrInvalid, ep.Receiver, wire, goName, why)
	}
	for wire, goName := range ep.Names {
		e.explicit[wire] = byGoName[goName]
	}
	if len(byGoName) == 0 {
		return nil, nil, noMethodError(ep, rejected)
	}
	return e, rejected, nil
}

// noMethodError says why ep exposes no method.
func noMethodError(ep Endpoint, rejected []unexposed) error {
	if len(rejected) == 0 {
		return fmt.Errorf("%w: endpoint %T exposes no method: it has no exported method the access policy allows", transport.ErrInvalid, ep.Receiver)
	}
	reasons := make([]string, len(rejected))
	for i, u := range rejected {
		reasons[i] = u.method + ": " + u.reason
	}
	return fmt.Errorf("%w: endpoint %T exposes no method (%s)", transport.ErrInvalid, ep.Receiver, strings.Join(reasons, "; "))
}

// shapes lists the method shapes an endpoint exposes, for messages.
const shapes = "func(context.Context[, Args]) ([Result, ]error)"

// methodShape checks a method's type (its receiver first) against the
// shapes an endpoint exposes: it returns the method's Args (nil if it has
// none) and whether it returns a result, or why it cannot be exposed.
func methodShape(t reflect.Type) (args reflect.Type, hasResult bool, reason string) {
	params := t.NumIn() - 1
	switch {
	case t.IsVariadic():
		return nil, false, "it is variadic; want " + shapes
	case params == 0 || t.In(1) != ctxType:
		return nil, false, "its first parameter is not a context.Context; want " + shapes
	case params > 2:
		return nil, false, fmt.Sprintf("it takes %d parameters after the context; put the arguments in one struct: want %s", params-1, shapes)
	case params == 2:
		args = t.In(2)
		if !decodesObject(args) {
			return nil, false, fmt.Sprintf("its arguments type %s cannot hold keyword arguments, a JSON object: use a struct, a map or json.RawMessage", args)
		}
	}
	switch {
	case t.NumOut() == 0 || t.Out(t.NumOut()-1) != errorType:
		return nil, false, "it does not return an error last; want " + shapes
	case t.NumOut() > 2:
		return nil, false, fmt.Sprintf("it returns %d results; want %s", t.NumOut(), shapes)
	case t.NumOut() == 2 && !encodable(t.Out(0)):
		return nil, false, fmt.Sprintf("its result type %s does not encode as JSON", t.Out(0))
	}
	return args, t.NumOut() == 2, ""
}

var (
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	jsonMarshalerType   = reflect.TypeFor[json.Marshaler]()
)

// decodesObject reports whether encoding/json can decode a JSON object
// into a value of type t.
func decodesObject(t reflect.Type) bool {
	if reflect.PointerTo(t).Implements(jsonUnmarshalerType) {
		return true
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return true
	case reflect.Interface:
		return t.NumMethod() == 0
	case reflect.Pointer:
		return decodesObject(t.Elem())
	}
	return false
}

// encodable reports whether encoding/json can encode a value of type t,
// as far as its kind tells.
func encodable(t reflect.Type) bool {
	if t.Implements(jsonMarshalerType) || reflect.PointerTo(t).Implements(jsonMarshalerType) {
		return true
	}
	switch t.Kind() {
	case reflect.Chan, reflect.Func, reflect.Complex64, reflect.Complex128, reflect.UnsafePointer:
		return false
	}
	return true
}

// pointerMethods returns the exported methods with a pointer receiver of
// t, a Receiver that is not a pointer, which its method set lacks: those
// of an exposable shape would be exposed by registering a pointer.
func pointerMethods(t reflect.Type, ep Endpoint, allowed AccessPolicy) []unexposed {
	if t.Kind() == reflect.Pointer {
		return nil
	}
	pt := reflect.PointerTo(t)
	var found []unexposed
	for i := range pt.NumMethod() {
		m := pt.Method(i)
		if _, inSet := t.MethodByName(m.Name); inSet || allowed != nil && !allowed(ep, m.Name) {
			continue
		}
		reason := fmt.Sprintf("it has a pointer receiver and the endpoint's Receiver is a %s value: register a pointer (&%s{})", t, t)
		if _, _, shape := methodShape(m.Type); shape != "" {
			reason = shape
		}
		found = append(found, unexposed{m.Name, reason})
	}
	return found
}

// methodFrame returns the traceback frame of t's method name: the file
// and line where its code begins and its function's name. A method the
// compiler generated (a value method called through a pointer, a method
// promoted from an embedded field) is traced to the method it calls.
func methodFrame(t reflect.Type, name string) string {
	fn := declaredMethod(t, name, 4)
	if fn == nil {
		return ""
	}
	file, line := fn.FileLine(fn.Entry())
	return oslo.TracebackFrame(file, line, fn.Name())
}

// declaredMethod finds the function of t's method name, looking through
// generated wrappers into t's element and embedded types, depth levels
// deep.
func declaredMethod(t reflect.Type, name string, depth int) *runtime.Func {
	m, ok := t.MethodByName(name)
	if !ok || !m.Func.IsValid() { // an interface's methods have no Func
		return nil
	}
	fn := runtime.FuncForPC(m.Func.Pointer())
	if fn == nil {
		return nil
	}
	if file, _ := fn.FileLine(fn.Entry()); file != "<autogenerated>" || depth == 0 {
		return fn
	}
	base := t
	if t.Kind() == reflect.Pointer {
		if inner := declaredMethod(t.Elem(), name, depth-1); inner != nil {
			return inner
		}
		base = t.Elem()
	}
	if base.Kind() == reflect.Struct {
		for i := range base.NumField() {
			f := base.Field(i)
			if !f.Anonymous {
				continue
			}
			for _, ft := range []reflect.Type{f.Type, reflect.PointerTo(f.Type)} {
				if inner := declaredMethod(ft, name, depth-1); inner != nil {
					return inner
				}
			}
		}
	}
	return fn
}

func (e *endpoint) lookup(name string) *method {
	if m, ok := e.explicit[name]; ok {
		return m
	}
	if m, ok := e.exact[name]; ok {
		return m
	}
	return e.methods[normalize(name)]
}

// snakeCase spells a Go method name the Python way: StartInstance is
// start_instance, GetHTTPURL get_httpurl.
func snakeCase(name string) string {
	var b strings.Builder
	for i, r := range name {
		if 'A' <= r && r <= 'Z' {
			if i > 0 && !('A' <= rune(name[i-1]) && rune(name[i-1]) <= 'Z') {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// compatible applies oslo's version rule: same major version, and the
// requested minor (and revision) not above the endpoint's.
func (e *endpoint) compatible(major, minor, rev int) bool {
	return major == e.major && (minor < e.minor || minor == e.minor && rev <= e.rev)
}

// parseVersion parses "major", "major.minor" or "major.minor.revision",
// without allocating: every request's version is parsed. As oslo's
// version_is_compatible, it reads three parts at most and ignores what
// follows the third.
func parseVersion(v string) (major, minor, rev int, err error) {
	var nums [3]int
	part, digits := 0, 0
	for i := 0; i <= len(v); i++ {
		if i == len(v) || v[i] == '.' {
			if digits == 0 {
				return 0, 0, 0, fmt.Errorf("%w: version %q is not \"major.minor\"", transport.ErrInvalid, v)
			}
			if part++; part == len(nums) {
				break
			}
			digits = 0
			continue
		}
		c := v[i]
		if c < '0' || c > '9' || nums[part] > 1e8 {
			return 0, 0, 0, fmt.Errorf("%w: version %q is not \"major.minor\"", transport.ErrInvalid, v)
		}
		nums[part] = nums[part]*10 + int(c-'0')
		digits++
	}
	return nums[0], nums[1], nums[2], nil
}

// dispatcher finds the method a request names, by oslo's rules.
type dispatcher struct {
	endpoints []*endpoint
	errors    *ErrorRegistry // names the errors methods return; nil for none
}

// find returns the method for req, or the failure oslo would send.
func (d *dispatcher) find(req *oslo.Request) (*method, *oslo.Failure) {
	version := req.Version
	if version == "" {
		version = "1.0"
	}
	major, minor, rev, err := parseVersion(version)
	if err != nil {
		return nil, oslo.UnsupportedVersion(version, req.Method)
	}
	if strings.HasPrefix(req.Method, "_") {
		return nil, oslo.NoSuchMethod(req.Method)
	}
	foundCompatible := false
	for _, e := range d.endpoints {
		if e.Namespace != req.Namespace || !e.compatible(major, minor, rev) {
			continue
		}
		if m := e.lookup(req.Method); m != nil {
			return m, nil
		}
		foundCompatible = true
	}
	if foundCompatible {
		return nil, oslo.NoSuchMethod(req.Method)
	}
	return nil, oslo.UnsupportedVersion(version, req.Method)
}

// invoke decodes the arguments and runs the method; a panic becomes a
// failure rather than a crash. errs names the errors it returns (nil:
// by their Go types).
func (m *method) invoke(ctx context.Context, rawArgs json.RawMessage, errs *ErrorRegistry) (result json.RawMessage, failure *oslo.Failure) {
	in := [3]reflect.Value{m.recv, contextValue(ctx)}
	n := 2
	if m.args != nil {
		args := reflect.New(m.args).Elem()
		if err := m.decodeArgs(rawArgs, args); err != nil {
			return nil, oslo.NewFailure("builtins", "TypeError",
				fmt.Sprintf("%s() arguments %s do not decode into %s: %v", m.name, truncate(rawArgs, 200), m.args, err))
		}
		in[n] = args
		n++
	}
	defer func() {
		if p := recover(); p != nil {
			result, failure = nil, panicFailure(m.name, p)
		}
	}()
	out := m.fn.Call(in[:n])
	if errV := out[len(out)-1]; !errV.IsNil() {
		return nil, failureFromError(errV.Interface().(error), m.frame, errs)
	}
	if !m.hasResult {
		return nil, nil
	}
	raw, err := m.encodeResult(out[0])
	if err != nil {
		return nil, oslo.NewFailure("builtins", "TypeError", fmt.Sprintf("%s() result %T does not encode as JSON: %v", m.name, out[0].Interface(), err))
	}
	return raw, nil
}

// contextValue returns ctx as a reflect.Value of type context.Context, not
// of its concrete type, which Call would check against the interface on
// every call.
func contextValue(ctx context.Context) reflect.Value {
	if lc, ok := ctx.(*lazyContext); ok {
		return reflect.ValueOf(&lc.self).Elem()
	}
	boxed := ctx // only this copy escapes, and only here
	return reflect.ValueOf(&boxed).Elem()
}

// decodeArgs decodes a request's keyword arguments into args, a zero
// value of m.args: through package flatjson where it can, else (and for
// the error) as decodeInto does.
func (m *method) decodeArgs(raw json.RawMessage, args reflect.Value) error {
	if m.argsDecoder != nil {
		if m.argsDecoder.Decode(raw, args) {
			return nil
		}
		args.SetZero()
	}
	return decodeInto(raw, args.Addr().Interface())
}

// encodeResult encodes a method's result as json.Marshal does: through
// package flatjson where it can.
func (m *method) encodeResult(result reflect.Value) ([]byte, error) {
	if m.resultEncoder != nil {
		if raw, ok := m.resultEncoder.Append(make([]byte, 0, 128), result); ok {
			return raw, nil
		}
	} else if raw, ok := flatjson.AppendScalar(make([]byte, 0, 24), result.Interface()); ok {
		return raw, nil
	}
	return json.Marshal(result.Interface())
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
