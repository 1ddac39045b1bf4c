package all_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/config"
	"github.com/switchyard-mq/switchyard/internal/messaging"
	"github.com/switchyard-mq/switchyard/notify"
	"github.com/switchyard-mq/switchyard/rpc"
	"github.com/switchyard-mq/switchyard/transport"

	_ "github.com/switchyard-mq/switchyard/drivers/all"
)

// spellings are values of each kind of option: those every reader
// accepts, with what they mean, and those every reader refuses.
var spellings = []struct {
	kind     string
	accepted map[string]string // spelling -> its value, as the option's reader reports it
	refused  []string
}{
	{"boolean",
		map[string]string{"true": "true", "True": "true", "YES": "true", "on": "true", "1": "true",
			"false": "false", "No": "false", "OFF": "false", "0": "false"},
		[]string{"t", "y", "maybe", "2", "yess", "-"}},
	{"duration",
		map[string]string{"1800": "30m0s", "90": "1m30s", "1.5": "1.5s", "90s": "1m30s", "1m30s": "1m30s", "1500ms": "1.5s", " 60 ": "1m0s", "0": "0s"},
		[]string{"-5", "soon", "5 s", "NaN", "Inf", "1e300", "0x10"}},
	{"integer",
		map[string]string{"10": "10", " 10 ": "10", "+10": "10", "0": "0"},
		[]string{"ten", "1.5", "-1", "1e3", "0x10", "10%"}},
}

// kindOptions names, for each kind, an option of it that every scheme
// takes (the portable amqp_durable_queues and rabbit_transient_queues_ttl,
// which the rpc and notify layers read) or, for integers, which the
// portable set has none of, the backends' own that take 0 (amqp://'s one
// integer, prefetch_size, starts at 1).
var kindOptions = map[string]map[string]string{
	"boolean":  {"memory": "amqp_durable_queues", "rabbit": "amqp_durable_queues", "amqp": "amqp_durable_queues", "zmq": "amqp_durable_queues"},
	"duration": {"memory": "rabbit_transient_queues_ttl", "rabbit": "rabbit_transient_queues_ttl", "amqp": "rabbit_transient_queues_ttl", "zmq": "rabbit_transient_queues_ttl"},
	"integer":  {"rabbit": "rabbit_qos_prefetch_count", "zmq": "buffer_size"},
}

// urlFor is a URL of scheme whose backend cannot be reached, so that an
// accepted option shows as a connection failure and a refused one as
// ErrInvalid, before any dial; memory:// and zmq:// open in the process.
func urlFor(scheme, option, value string) string {
	query := "?" + option + "=" + strings.ReplaceAll(value, " ", "%20")
	switch scheme {
	case "rabbit", "amqp":
		return scheme + "://127.0.0.1:1/" + query
	}
	return scheme + "://options-test" + query
}

// TestOneOptionParser: the same spelling of a boolean, a duration or an
// integer is accepted or refused alike by every backend's URL, by the
// configuration loader's file, and by the rpc and notify layers, which
// read the same value from it.
func TestOneOptionParser(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, kind := range spellings {
		for scheme, name := range kindOptions[kind.kind] {
			for spelling, want := range kind.accepted {
				tr, err := transport.Open(ctx, urlFor(scheme, name, spelling))
				if errors.Is(err, transport.ErrInvalid) {
					t.Errorf("%s://?%s=%q refused: %v", scheme, name, spelling, err)
					continue
				}
				if err != nil {
					continue // accepted, then the dial failed: as wanted
				}
				checkLayers(t, tr, name, spelling, want)
				_ = tr.Close()
			}
			for _, spelling := range kind.refused {
				_, err := transport.Open(ctx, urlFor(scheme, name, spelling))
				if !errors.Is(err, transport.ErrInvalid) || !strings.Contains(err.Error(), name) {
					t.Errorf("%s://?%s=%q: %v, want ErrInvalid naming the option", scheme, name, spelling, err)
				}
			}
		}
		fileAcceptsAlike(t, kind.kind, kind.accepted, kind.refused)
	}
}

// checkLayers checks that rpc and notify take a transport whose URL holds
// an accepted spelling, and read the value it means.
func checkLayers(t *testing.T, tr *transport.Transport, name, spelling, want string) {
	t.Helper()
	if _, err := rpc.NewClient(tr); err != nil {
		t.Errorf("%s?%s=%q: rpc.NewClient: %v", tr, name, spelling, err)
	}
	if _, err := notify.NewNotifier(tr, "options-test"); err != nil {
		t.Errorf("%s?%s=%q: notify.NewNotifier: %v", tr, name, spelling, err)
	}
	topo, err := messaging.NewTopology(tr)
	if err != nil {
		t.Errorf("%s: the rpc and notify layers' topology: %v", tr, err)
		return
	}
	var got string
	switch name {
	case "amqp_durable_queues":
		got = map[bool]string{true: "true", false: "false"}[topo.Durable]
		if !tr.Capabilities().Has(transport.CapDurable) {
			// A backend that keeps nothing durable declares everything
			// transient whatever the spelling says, and warns when it
			// says true.
			want = "false"
		}
	case "rabbit_transient_queues_ttl":
		got = topo.TransientTTL.String()
	default:
		return
	}
	if got != want {
		t.Errorf("%s: %s=%q reads as %s, want %s", tr, name, spelling, got, want)
	}
}

// fileAcceptsAlike checks the configuration loader's reading of the same
// spellings in an oslo.config file.
func fileAcceptsAlike(t *testing.T, kind string, accepted map[string]string, refused []string) {
	t.Helper()
	name := map[string]string{"boolean": "amqp_durable_queues", "duration": "rabbit_transient_queues_ttl", "integer": "rabbit_qos_prefetch_count"}[kind]
	load := func(value string) (config.Config, error) {
		path := filepath.Join(t.TempDir(), "service.conf")
		text := "[DEFAULT]\ntransport_url = rabbit://127.0.0.1:1/\n[oslo_messaging_rabbit]\n" + name + " = " + value + "\n"
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return config.Load(config.Sources{Files: []string{path}})
	}
	for spelling := range accepted {
		if _, err := load(spelling); err != nil {
			t.Errorf("file: %s = %q refused: %v", name, spelling, err)
		}
	}
	for _, spelling := range refused {
		if _, err := load(spelling); !errors.Is(err, transport.ErrInvalid) {
			t.Errorf("file: %s = %q: %v, want ErrInvalid", name, spelling, err)
		}
	}
}
