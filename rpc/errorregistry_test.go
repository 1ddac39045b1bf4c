package rpc_test

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"
)

// The errors of an "orders" service, as a Go package would declare them.
var (
	errOrderNotFound = errors.New("order not found")
	errStoreClosed   = errors.New("store closed") // not registered
)

// shippedError is registered as a pointer type; its cause does not travel.
type shippedError struct {
	Order   string `json:"order"`
	Carrier string `json:"carrier"`
	Cause   error  `json:"-"`
}

func (e *shippedError) Error() string { return "order " + e.Order + " shipped with " + e.Carrier }
func (e *shippedError) Unwrap() error { return e.Cause }

// limitError is registered as a value type.
type limitError struct {
	Limit int `json:"limit"`
}

func (e limitError) Error() string { return fmt.Sprintf("over the limit of %d", e.Limit) }

// badFieldError's fields do not encode as JSON.
type badFieldError struct{ Callback func() }

func (badFieldError) Error() string { return "bad field" }

func ordersRegistry(t *testing.T) *rpc.ErrorRegistry {
	t.Helper()
	reg, err := rpc.NewErrorRegistry(
		rpc.ErrorValue("orders", "NotFound", errOrderNotFound),
		rpc.ErrorType[*shippedError]("orders", "Shipped"),
		rpc.ErrorType[limitError]("orders.limits", "LimitExceeded"),
		rpc.ErrorType[badFieldError]("orders", "BadField"),
	)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// TestRegisteredErrorsRoundTrip: a registered error an endpoint returns
// is what the caller's errors.Is and errors.As find, under its module and
// class, with the *RemoteError and its traceback still in the chain.
func TestRegisteredErrorsRoundTrip(t *testing.T) {
	reg := ordersRegistry(t)
	raised := map[string]error{
		"wrapped_value":     fmt.Errorf("find o-1: %w", errOrderNotFound),
		"pointer_type":      fmt.Errorf("cancel: %w", &shippedError{Order: "o-2", Carrier: "dhl"}),
		"value_type":        limitError{Limit: 3},
		"outermost_wins":    &shippedError{Order: "o-3", Carrier: "ups", Cause: errOrderNotFound},
		"joined":            errors.Join(errStoreClosed, errOrderNotFound),
		"unregistered":      fmt.Errorf("cancel: %w", errStoreClosed),
		"unencodable_field": badFieldError{Callback: func() {}},
		// What a Python server sends for orders.Shipped(order=..., carrier=...).
		"python_exception": &rpc.RemoteError{Module: "orders", Class: "Shipped", Message: "shipped",
			Kwargs: map[string]any{"order": "o-4", "carrier": "post"}},
	}
	tr := open(t)
	startServer(t, tr, "failer", &failer{errs: raised}, rpc.WithServerErrors(reg))
	client := newClient(t, tr, rpc.WithTimeout(5*time.Second), rpc.WithErrors(reg))
	target := transport.Target{Topic: "failer"}

	tests := []struct {
		name                string
		wantModule, wantCls string
		wantIs              error // errors.Is finds it
		wantNotIs           error // errors.Is does not
		wantAs              any   // errors.As into a new value of its type finds this
	}{
		{name: "wrapped_value", wantModule: "orders", wantCls: "NotFound", wantIs: errOrderNotFound},
		{name: "pointer_type", wantModule: "orders", wantCls: "Shipped",
			wantAs: &shippedError{Order: "o-2", Carrier: "dhl"}},
		{name: "value_type", wantModule: "orders.limits", wantCls: "LimitExceeded", wantAs: limitError{Limit: 3}},
		{name: "outermost_wins", wantModule: "orders", wantCls: "Shipped", wantNotIs: errOrderNotFound,
			wantAs: &shippedError{Order: "o-3", Carrier: "ups"}},
		{name: "joined", wantModule: "orders", wantCls: "NotFound", wantIs: errOrderNotFound, wantNotIs: errStoreClosed},
		{name: "unregistered", wantModule: "go", wantCls: "Error", wantNotIs: errStoreClosed},
		{name: "unencodable_field", wantModule: "builtins", wantCls: "TypeError"},
		{name: "python_exception", wantModule: "orders", wantCls: "Shipped",
			wantAs: &shippedError{Order: "o-4", Carrier: "post"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := client.Call(testCtx(t), target, "raise", nameArgs{tt.name}, nil)
			var re *rpc.RemoteError
			if !errors.As(err, &re) {
				t.Fatalf("got %v, want a *rpc.RemoteError in the chain", err)
			}
			if re.Module != tt.wantModule || re.Class != tt.wantCls || len(re.Traceback) == 0 {
				t.Fatalf("remote error %s.%s with %d traceback lines, want %s.%s with a traceback",
					re.Module, re.Class, len(re.Traceback), tt.wantModule, tt.wantCls)
			}
			switch tt.name {
			case "python_exception":
			case "unencodable_field":
				if want := `orders.BadField "bad field" does not encode as JSON`; !strings.Contains(re.Message, want) {
					t.Errorf("message %q lacks %q", re.Message, want)
				}
			default:
				if re.Message != raised[tt.name].Error() {
					t.Errorf("message %q, want the endpoint's error %q", re.Message, raised[tt.name].Error())
				}
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("errors.Is(%v, %v) is false", err, tt.wantIs)
			}
			if tt.wantNotIs != nil && errors.Is(err, tt.wantNotIs) {
				t.Errorf("errors.Is(%v, %v) is true", err, tt.wantNotIs)
			}
			if tt.wantAs != nil {
				target := reflect.New(reflect.TypeOf(tt.wantAs))
				if !errors.As(err, target.Interface()) {
					t.Fatalf("errors.As(%v, %T) is false", err, target.Interface())
				}
				if got := target.Elem().Interface(); !reflect.DeepEqual(got, tt.wantAs) {
					t.Errorf("errors.As found %#v, want %#v", got, tt.wantAs)
				}
			}
			if tt.wantIs == nil && tt.wantAs == nil && re.Unwrap() != nil {
				t.Errorf("unregistered failure unwraps to %v", re.Unwrap())
			}
		})
	}
}

// TestErrorsPerClient: a client without the registry gets the registered
// class and module as a plain *RemoteError, as an oslo client whose
// allowed_remote_exmods lacks the module gets RemoteError.
func TestErrorsPerClient(t *testing.T) {
	reg := ordersRegistry(t)
	tr := open(t)
	startServer(t, tr, "failer", &failer{errs: map[string]error{"nf": errOrderNotFound}}, rpc.WithServerErrors(reg))
	target := transport.Target{Topic: "failer"}

	plain := newClient(t, tr, rpc.WithTimeout(5*time.Second))
	err := plain.Call(testCtx(t), target, "raise", nameArgs{"nf"}, nil)
	var re *rpc.RemoteError
	if !errors.As(err, &re) || re.Module != "orders" || re.Class != "NotFound" || re.Message != errOrderNotFound.Error() {
		t.Fatalf("client without the registry got %v (%+v), want a remote orders.NotFound", err, re)
	}
	if errors.Is(err, errOrderNotFound) || re.Unwrap() != nil {
		t.Errorf("client without the registry rebuilt %v", re.Unwrap())
	}
	err = plain.Prepare(rpc.WithErrors(reg)).Call(testCtx(t), target, "raise", nameArgs{"nf"}, nil)
	if !errors.Is(err, errOrderNotFound) {
		t.Errorf("prepared client with the registry got %v, want errOrderNotFound", err)
	}
}

// TestUndecodableKwargsWarn: kwargs that do not decode into the
// registered type leave a plain *RemoteError, and a warning says why.
func TestUndecodableKwargsWarn(t *testing.T) {
	reg := ordersRegistry(t)
	tr, logs := openLogged(t, slog.LevelWarn)
	startServer(t, tr, "failer", &failer{errs: map[string]error{"bad": &rpc.RemoteError{
		Module: "orders", Class: "Shipped", Message: "shipped", Kwargs: map[string]any{"order": 42}}}})
	client := newClient(t, tr, rpc.WithTimeout(5*time.Second), rpc.WithErrors(reg))
	err := client.Call(testCtx(t), transport.Target{Topic: "failer"}, "raise", nameArgs{"bad"}, nil)
	var re *rpc.RemoteError
	var shipped *shippedError
	if !errors.As(err, &re) || re.Class != "Shipped" || errors.As(err, &shipped) {
		t.Fatalf("got %v, want a plain remote orders.Shipped", err)
	}
	for _, want := range []string{"level=WARN", `msg="remote error left unregistered"`, "orders.Shipped", "do not decode into *rpc_test.shippedError"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
}

type notComparableError []string

func (notComparableError) Error() string { return "not comparable" }

type intError int

func (intError) Error() string { return "int" }

// TestNewErrorRegistryRejects: every bad entry is an ErrInvalid naming
// it, each reported.
func TestNewErrorRegistryRejects(t *testing.T) {
	other := errors.New("other")
	tests := []struct {
		name    string
		entries []rpc.ErrorEntry
		want    []string
	}{
		{"nil_value", []rpc.ErrorEntry{rpc.ErrorValue("orders", "NotFound", nil)}, []string{"orders.NotFound: the value is nil"}},
		{"not_comparable", []rpc.ErrorEntry{rpc.ErrorValue("orders", "List", notComparableError{"a"})},
			[]string{"not comparable, so errors.Is cannot match it"}},
		{"interface_type", []rpc.ErrorEntry{rpc.ErrorType[error]("orders", "Any")}, []string{"error is an interface"}},
		{"not_struct", []rpc.ErrorEntry{rpc.ErrorType[intError]("orders", "Int")}, []string{"rpc_test.intError is not a struct"}},
		{"remote_error", []rpc.ErrorEntry{rpc.ErrorType[*rpc.RemoteError]("orders", "Remote")}, []string{"sent as it is"}},
		{"empty_module", []rpc.ErrorEntry{rpc.ErrorValue("", "NotFound", other)}, []string{`module "" is empty`}},
		{"module_with_space", []rpc.ErrorEntry{rpc.ErrorValue("my orders", "NotFound", other)}, []string{`module "my orders"`}},
		{"bad_class", []rpc.ErrorEntry{rpc.ErrorValue("orders", "Not.Found", other)}, []string{`class "Not.Found" is not a Python identifier`}},
		{"empty_class", []rpc.ErrorEntry{rpc.ErrorValue("orders", "", other)}, []string{`class "" is not a Python identifier`}},
		{"remote_suffix", []rpc.ErrorEntry{rpc.ErrorValue("orders", "NotFound_Remote", other)}, []string{"suffix _Remote"}},
		{"zero_entry", []rpc.ErrorEntry{{}}, []string{"not made by ErrorValue or ErrorType"}},
		{"same_name", []rpc.ErrorEntry{rpc.ErrorValue("orders", "NotFound", errOrderNotFound), rpc.ErrorType[*shippedError]("orders", "NotFound")},
			[]string{`orders.NotFound: registered for value "order not found" and for type *rpc_test.shippedError`}},
		{"same_value", []rpc.ErrorEntry{rpc.ErrorValue("orders", "NotFound", errOrderNotFound), rpc.ErrorValue("orders", "Missing", errOrderNotFound)},
			[]string{`value "order not found" registered as orders.NotFound and as orders.Missing`}},
		{"same_type", []rpc.ErrorEntry{rpc.ErrorType[limitError]("orders", "Limit"), rpc.ErrorType[limitError]("orders", "Limit2")},
			[]string{"type rpc_test.limitError registered as orders.Limit and as orders.Limit2"}},
		{"all_reported", []rpc.ErrorEntry{rpc.ErrorValue("orders", "A", nil), rpc.ErrorValue("", "B", other)},
			[]string{"orders.A: the value is nil", `module "" is empty`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg, err := rpc.NewErrorRegistry(tt.entries...)
			if reg != nil || !errors.Is(err, transport.ErrInvalid) {
				t.Fatalf("got %v, %v; want an ErrInvalid", reg, err)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
}
