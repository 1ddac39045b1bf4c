package bench

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/switchyard-mq/switchyard/transport"
)

// Backend is one transport URL to benchmark: Switchyard on it and,
// beside it, the raw client of its scheme.
type Backend struct {
	label  string // the URL, without its password
	scheme string
	sides  []client // Switchyard's, then the raw client's if there is one
	note   string
}

// client runs the workloads through one client: Switchyard, or a raw
// baseline. Each method sets up, warms up, measures with m once (through
// measureStream or measureCalls) and cleans up what it declared.
type client interface {
	// name is the client's name in reports: "switchyard", "raw zmq4".
	name() string
	// publish runs a publish→consume case: auto-ack, or with ack manual
	// ack of each delivery, prefetch AckPrefetch.
	publish(ctx context.Context, lim Limits, ack bool, m *meter) error
	// rpc runs an RPC case with callers callers.
	rpc(ctx context.Context, lim Limits, callers int, m *meter) error
}

// NewBackend prepares u for benchmarking. Its scheme's driver must be
// registered. Its raw client reads the options of u that change what the
// driver does (rabbit's confirms, amqp's presettled, prefetch_size and
// flavour) so that both sides do the same work; a scheme with no raw
// client (rabbits:// and other TLS ones) is measured alone, and Note
// says so.
func NewBackend(u *transport.URL, o Options) (*Backend, error) {
	if !slices.Contains(transport.Schemes(), u.Scheme) {
		return nil, fmt.Errorf("no driver for scheme %q (registered: %s)", u.Scheme, strings.Join(transport.Schemes(), ", "))
	}
	raws, note, err := rawClients(u)
	if err != nil {
		return nil, err
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	b := &Backend{label: u.String(), scheme: u.Scheme, note: note, sides: []client{&switchyardClient{url: u.Clone(), opts: o}}}
	b.sides = append(b.sides, raws...)
	return b, nil
}

// Label is the backend's URL without its password, as reports show it.
func (b *Backend) Label() string { return b.label }

// Note says what a reader of the results should know about the
// backend's raw client (what it waits for, or that there is none); ""
// for nothing.
func (b *Backend) Note() string { return b.note }

// rawClients returns the raw clients of u's scheme, the plain one first,
// and a note on them, or one saying why there is none.
func rawClients(u *transport.URL) ([]client, string, error) {
	switch u.Scheme {
	case "memory":
		return []client{chanClient{}}, "", nil
	case "rabbit":
		r, err := newRabbitClient(u)
		if err != nil {
			return nil, "", err
		}
		sides := []client{r, rabbitOsloClient{raw: r}}
		if r.confirms {
			return sides, "every publish waits for the broker's confirm, the raw client's too (the driver's default; add ?confirms=false to the URL for neither); RPC calls have " + rawOsloName + " beside, as their floor with Switchyard's promises", nil
		}
		return sides, "publishes do not wait for confirms (confirms=false), nor do the raw client's; RPC calls have " + rawOsloName + " beside, as their floor with Switchyard's promises", nil
	case "zmq":
		return []client{zmqClient{}}, "", nil
	case "amqp":
		r, err := newAMQP1Client(u)
		if err != nil {
			return nil, "", err
		}
		return []client{r}, "", nil
	}
	return nil, fmt.Sprintf("no raw baseline for scheme %s (TLS and other schemes are measured without one)", u.Scheme), nil
}

// sidesFor returns the sides of b that run c: every side, but for the
// notify case only those that can, and for the stream cases only those
// that are not for RPC only (Switchyard's always).
func (b *Backend) sidesFor(c Case) []client {
	var cls []client
	for _, cl := range b.sides {
		_, notifies := cl.(notifier)
		_, onlyRPC := cl.(rpcOnly)
		if (c.Notify && !notifies) || (!c.RPC && onlyRPC) {
			continue
		}
		cls = append(cls, cl)
	}
	return cls
}

// rpcOnly is a side that runs the RPC cases only.
type rpcOnly interface{ rpcOnly() }

// runCase runs c on cl within lim, measured by m.
func runCase(ctx context.Context, c Case, cl client, lim Limits, m *meter) error {
	if c.Notify {
		n, ok := cl.(notifier)
		if !ok {
			return fmt.Errorf("%s: no notifications", cl.name())
		}
		return runNotify(ctx, n, lim, lim.callers(c), m)
	}
	if c.RPC {
		return cl.rpc(ctx, lim, lim.callers(c), m)
	}
	return cl.publish(ctx, lim, c.Ack, m)
}
