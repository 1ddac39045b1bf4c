package transport

import (
	"fmt"
	"strings"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

// validName checks a queue or exchange name: at most 255 bytes of UTF-8
// without control characters. what names the field for the error.
func validName(what, name string) error {
	if err := driver.CheckName(name, true); err != nil {
		return fmt.Errorf("%w: %s %w", ErrInvalid, what, err)
	}
	return nil
}

// validRequiredName is validName for a name that must not be empty.
func validRequiredName(what, name string) error {
	if name == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalid, what)
	}
	return validName(what, name)
}

// validDeclaredName also refuses the "amq." prefix, which AMQP brokers
// reserve for their own entities.
func validDeclaredName(what, name string) error {
	if err := validRequiredName(what, name); err != nil {
		return err
	}
	if strings.HasPrefix(name, "amq.") {
		return fmt.Errorf("%w: %s %q: the prefix \"amq.\" is reserved for the broker", ErrInvalid, what, name)
	}
	return nil
}
