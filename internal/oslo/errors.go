package oslo

import (
	"errors"
	"fmt"
)

var (
	// ErrMalformed reports a body or message that is not what oslo.messaging
	// sends: not JSON, not an object, a key of the wrong type, or a value the
	// encoders refuse to send. Errors wrap it with a detail naming the cause.
	ErrMalformed = errors.New("oslo: malformed message")

	// ErrVersion reports a 2.0 envelope whose oslo.version is not compatible
	// with "2.0" (same major, minor and revision not above 0). A Python
	// receiver rejects such a delivery too.
	ErrVersion = errors.New("oslo: unsupported envelope version")

	// ErrArgsNotObject reports a request whose args key is present but is not
	// a JSON object, typically null. It wraps ErrMalformed. A Python server
	// runs into AttributeError on such a request and answers a call with that
	// failure; DecodeRequest returns the rest of the request with this error so
	// a Go server can do the same (see ArgsNotObject).
	ErrArgsNotObject = fmt.Errorf("%w: args is not a JSON object", ErrMalformed)
)

// malformed returns an error wrapping ErrMalformed with a formatted detail.
func malformed(format string, args ...any) error {
	return errorf(ErrMalformed, format, args...)
}

// errorf returns an error wrapping sentinel with a formatted detail.
func errorf(sentinel error, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)
}
