package transport

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

// registry maps URL schemes to drivers. It is the one piece of package
// state: drivers fill it from their init functions, as database/sql's do.
var registry = struct {
	sync.RWMutex
	openers map[string]driver.Opener
}{openers: map[string]driver.Opener{}}

// Register makes a driver available under a URL scheme. It is meant to be
// called from a driver package's init function, and panics if the scheme
// is empty or already taken, since that is a programming error.
func Register(scheme string, opener driver.Opener) {
	scheme = strings.ToLower(scheme)
	registry.Lock()
	defer registry.Unlock()
	if scheme == "" || opener == nil {
		panic("transport: Register with an empty scheme or a nil opener")
	}
	if _, dup := registry.openers[scheme]; dup {
		panic("transport: Register called twice for scheme " + scheme)
	}
	registry.openers[scheme] = opener
}

// Schemes returns the registered URL schemes, sorted.
func Schemes() []string {
	registry.RLock()
	defer registry.RUnlock()
	schemes := make([]string, 0, len(registry.openers))
	for s := range registry.openers {
		schemes = append(schemes, s)
	}
	slices.Sort(schemes)
	return schemes
}

func lookupOpener(scheme string) (driver.Opener, error) {
	registry.RLock()
	opener, ok := registry.openers[scheme]
	registry.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w: no driver for scheme %q (registered: %s; import the driver package, or drivers/all for every driver)",
			ErrInvalid, scheme, strings.Join(Schemes(), ", "))
	}
	return opener, nil
}
