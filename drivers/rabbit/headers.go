package rabbit

import (
	"fmt"
	"math"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

// toTable converts message headers to an AMQP field table. Headers made
// only of types amqp091-go encodes faithfully are passed as they are (no
// copy on the publish path); others are converted: nested Headers and maps
// become tables, int becomes int64 (amqp091-go would truncate it to 32
// bits), unsigned integers that fit become int64. Anything else is an
// ErrInvalid error naming the header.
func toTable(h driver.Headers) (amqp.Table, error) {
	if h == nil {
		return nil, nil
	}
	plain := true
	for k, v := range h {
		if len(k) > maxShortString {
			return nil, fmt.Errorf("%w: header name %.40q... is %d bytes, more than AMQP's %d", driver.ErrInvalid, k, len(k), maxShortString)
		}
		if !plainField(v) {
			plain = false
		}
	}
	if plain {
		return amqp.Table(h), nil
	}
	t := make(amqp.Table, len(h))
	for k, v := range h {
		cv, err := toField(v)
		if err != nil {
			return nil, fmt.Errorf("%w: header %q: %v", driver.ErrInvalid, k, err)
		}
		t[k] = cv
	}
	return t, nil
}

// plainField reports whether amqp091-go encodes v as it is, and RabbitMQ
// takes it.
func plainField(v any) bool {
	switch x := v.(type) {
	case nil, bool, string, []byte, int8, int16, int32, int64, uint8, uint16, uint32, time.Time, amqp.Decimal:
		return true
	case float32:
		return !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0)
	case float64:
		return !math.IsNaN(x) && !math.IsInf(x, 0)
	}
	return false
}

// maxShortString is the longest AMQP 0-9-1 short string: property values
// such as the message id, and header names.
const maxShortString = 255

func toField(v any) (any, error) {
	switch x := v.(type) {
	case float32, float64:
		if !plainField(x) {
			// RabbitMQ closes the connection over it (541).
			return nil, fmt.Errorf("%v is not a number RabbitMQ accepts", x)
		}
		return x, nil
	case int:
		return int64(x), nil
	case uint:
		if uint64(x) > math.MaxInt64 {
			return nil, fmt.Errorf("%d does not fit a signed 64-bit AMQP integer", x)
		}
		return int64(x), nil
	case uint64:
		if x > math.MaxInt64 {
			return nil, fmt.Errorf("%d does not fit a signed 64-bit AMQP integer", x)
		}
		return int64(x), nil
	case driver.Headers:
		return toTable(x)
	case amqp.Table:
		return toTable(driver.Headers(x))
	case map[string]any:
		return toTable(driver.Headers(x))
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			ce, err := toField(e)
			if err != nil {
				return nil, fmt.Errorf("element %d: %v", i, err)
			}
			out[i] = ce
		}
		return out, nil
	}
	if plainField(v) {
		return v, nil
	}
	return nil, fmt.Errorf("type %T cannot be carried by AMQP", v)
}

// fromTable converts a delivered field table to Headers in place: nested
// tables become Headers, so that users see one map type at every depth.
func fromTable(t amqp.Table) driver.Headers {
	if t == nil {
		return nil
	}
	for k, v := range t {
		switch x := v.(type) {
		case amqp.Table:
			t[k] = fromTable(x)
		case []any:
			fromArray(x)
		}
	}
	return driver.Headers(t)
}

func fromArray(a []any) {
	for i, v := range a {
		switch x := v.(type) {
		case amqp.Table:
			a[i] = fromTable(x)
		case []any:
			fromArray(x)
		}
	}
}

// expiration renders a per-message TTL as AMQP wants it: whole
// milliseconds in decimal, at least 1 so that a positive TTL is never
// taken as "expire at once".
func expiration(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return strconv.FormatInt(max(d.Milliseconds(), 1), 10)
}

// parseExpiration reads a delivered expiration property; malformed ones
// (from foreign publishers) read as none.
func parseExpiration(s string) time.Duration {
	if s == "" {
		return 0
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms < 0 {
		return 0
	}
	return time.Duration(ms) * time.Millisecond
}

// intHeader reads an integer header of any AMQP integer type.
func intHeader(t amqp.Table, key string) (int64, bool) {
	switch x := t[key].(type) {
	case int64:
		return x, true
	case int32:
		return int64(x), true
	case int16:
		return int64(x), true
	case int8:
		return int64(x), true
	case uint8:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint32:
		return int64(x), true
	case int:
		return int64(x), true
	}
	return 0, false
}
