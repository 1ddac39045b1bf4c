package rabbit

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/internal/backoff"
	"github.com/switchyard-mq/switchyard/internal/rabbitmq"
	"github.com/switchyard-mq/switchyard/internal/tlsfiles"
	"github.com/switchyard-mq/switchyard/transport"
	"github.com/switchyard-mq/switchyard/transport/driver"
)

const secret = "s3cr3t-P@ss"

func parse(t *testing.T, raw string) (settings, error) {
	t.Helper()
	cfg, err := transport.ParseURL(raw)
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", raw, err)
	}
	return parseSettings(cfg)
}

func TestParseSettings(t *testing.T) {
	for _, tc := range []struct {
		url   string
		check func(t *testing.T, s settings)
	}{
		{"rabbit://", func(t *testing.T, s settings) {
			want := settings{user: "guest", password: "guest", vhost: "/", heartbeat: 60 * time.Second, confirms: true,
				reconnect: backoff.Backoff{Initial: time.Second, Multiplier: 2, Step: 2 * time.Second, Max: 30 * time.Second, Jitter: 0.5}}
			if s.user != want.user || s.password != want.password || s.vhost != want.vhost || s.heartbeat != want.heartbeat ||
				s.confirms != want.confirms || s.prefetch != 0 || s.queues != (rabbitmq.QueueOptions{}) || s.tls != nil || s.reconnect != want.reconnect {
				t.Errorf("defaults: got %+v", s)
			}
			if len(s.hosts) != 1 || s.hosts[0] != (driver.Host{Name: "localhost", Port: 5672}) {
				t.Errorf("hosts: got %v, want localhost:5672", s.hosts)
			}
		}},
		{"rabbit://u:" + secret + "@h1,h2:5673/", func(t *testing.T, s settings) {
			if s.user != "u" || s.password != secret || s.vhost != "/" {
				t.Errorf("credentials and vhost: got %q %q %q", s.user, s.password, s.vhost)
			}
			want := []driver.Host{{Name: "h1", Port: 5672}, {Name: "h2", Port: 5673}}
			if len(s.hosts) != 2 || s.hosts[0] != want[0] || s.hosts[1] != want[1] {
				t.Errorf("hosts: got %v, want %v", s.hosts, want)
			}
		}},
		{"rabbit://h/nova", func(t *testing.T, s settings) {
			if s.vhost != "nova" {
				t.Errorf("vhost: got %q, want nova", s.vhost)
			}
		}},
		{"rabbit://h//", func(t *testing.T, s settings) {
			if s.vhost != "/" {
				t.Errorf("vhost: got %q, want /", s.vhost)
			}
		}},
		{"rabbits://h", func(t *testing.T, s settings) {
			if s.tls == nil || s.hosts[0].Port != 5671 {
				t.Errorf("rabbits: tls %v, port %d; want TLS on 5671", s.tls != nil, s.hosts[0].Port)
			}
		}},
		{"rabbit://h?ssl=true", func(t *testing.T, s settings) {
			if s.tls == nil || s.hosts[0].Port != 5671 {
				t.Errorf("ssl=true: tls %v, port %d; want TLS on 5671", s.tls != nil, s.hosts[0].Port)
			}
		}},
		{"rabbit://h?heartbeat_timeout_threshold=0&rabbit_qos_prefetch_count=50&confirms=false", func(t *testing.T, s settings) {
			if s.heartbeat != 0 || s.prefetch != 50 || s.confirms {
				t.Errorf("got heartbeat %v prefetch %d confirms %v", s.heartbeat, s.prefetch, s.confirms)
			}
		}},
		{"rabbit://h?rabbit_quorum_queue=true&rabbit_quorum_delivery_limit=5", func(t *testing.T, s settings) {
			if want := (rabbitmq.QueueOptions{Quorum: true, QuorumDeliveryLimit: 5}); s.queues != want {
				t.Errorf("got %+v, want %+v", s.queues, want)
			}
		}},
		{"rabbit://h?rabbit_ha_queues=1", func(t *testing.T, s settings) {
			if !s.queues.HA {
				t.Error("rabbit_ha_queues=1 not read")
			}
		}},
		{"rabbit://h?rabbit_retry_interval=0.05&rabbit_retry_backoff=0&rabbit_interval_max=0.5", func(t *testing.T, s settings) {
			if r := s.reconnect; r.Initial != 50*time.Millisecond || r.Step != 0 || r.Max != 500*time.Millisecond {
				t.Errorf("got %+v", r)
			}
		}},
		{"rabbit://h?amqp_durable_queues=true&control_exchange=nova&amqp_auto_delete=false&rabbit_transient_queues_ttl=60", func(t *testing.T, s settings) {
			// The portable options belong to the layers above: accepted.
		}},
	} {
		t.Run(tc.url, func(t *testing.T) {
			s, err := parse(t, tc.url)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, s)
			if strings.Contains(s.url, secret) {
				t.Errorf("the redacted URL shows the password: %s", s.url)
			}
		})
	}
}

func TestParseSettingsErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		query string
		names string // the option the error must name
	}{
		{"bogus=1", "bogus"},
		{"heartbeat=10", "heartbeat"}, // amqp091's name, not oslo's
		{"heartbeat_timeout_threshold=-1", rabbitmq.Heartbeat.Spec().Name},
		{"heartbeat_timeout_threshold=ten", rabbitmq.Heartbeat.Spec().Name},
		{"rabbit_qos_prefetch_count=-5", rabbitmq.Prefetch.Spec().Name},
		{"rabbit_qos_prefetch_count=70000", rabbitmq.Prefetch.Spec().Name},
		{"confirms=maybe", rabbitmq.Confirms.Spec().Name},
		{"rabbit_quorum_queue=true&rabbit_ha_queues=true", rabbitmq.HAQueues.Spec().Name},
		{"rabbit_quorum_delivery_limit=x", rabbitmq.QuorumDeliveryLimit.Spec().Name},
		{"rabbit_retry_interval=0", rabbitmq.RetryInterval.Spec().Name},
		{"rabbit_retry_interval=NaN", rabbitmq.RetryInterval.Spec().Name},
		{"rabbit_retry_backoff=-1", rabbitmq.RetryBackoff.Spec().Name},
		{"rabbit_interval_max=0.1", rabbitmq.IntervalMax.Spec().Name},
		{"ssl_ca_file=/etc/ca.pem", tlsfiles.CAFile.Spec().Name}, // TLS is off
		{"ssl=true&ssl_ca_file=" + filepath.Join(dir, "missing.pem"), tlsfiles.CAFile.Spec().Name},
		{"ssl=true&ssl_ca_file=" + notPEM, tlsfiles.CAFile.Spec().Name},
		{"ssl=true&ssl_cert_file=" + notPEM, tlsfiles.KeyFile.Spec().Name},
		{"ssl=true&ssl_key_file=" + notPEM, tlsfiles.CertFile.Spec().Name},
		{"ssl=true&ssl_cert_file=" + notPEM + "&ssl_key_file=" + notPEM, tlsfiles.CertFile.Spec().Name},
		{"ssl=nope", rabbitmq.SSL.Spec().Name},
	} {
		t.Run(tc.query, func(t *testing.T) {
			_, err := parse(t, "rabbit://user:"+secret+"@h/?"+tc.query)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, driver.ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.names) {
				t.Errorf("error %q does not name %s", err, tc.names)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
	if _, err := parse(t, "rabbits://h?ssl=false"); err == nil || !strings.Contains(err.Error(), rabbitmq.SSL.Spec().Name) {
		t.Errorf("rabbits:// with ssl=false: got %v, want an error naming %s", err, rabbitmq.SSL.Spec().Name)
	}
}

// TestDeclaration: the driver counts the deliveries of classic queues
// with a delivery limit; quorum queues count their own. (The arguments are
// rabbitmq.QueueOptions.Declaration's, tested there.)
func TestDeclaration(t *testing.T) {
	limited := driver.Queue{Name: "q", DeliveryLimit: 3}
	quorum := settings{queues: rabbitmq.QueueOptions{Quorum: true}}
	for _, tc := range []struct {
		name    string
		s       settings
		q       driver.Queue
		counted int
	}{
		{"no limit", settings{}, driver.Queue{Name: "q"}, 0},
		{"classic queue: counted by the driver", settings{}, limited, 3},
		{"quorum queue: counted by the broker", quorum, limited, 0},
		{"a queue that stays classic with quorum queues on", quorum, driver.Queue{Name: "e", Exclusive: true, DeliveryLimit: 3}, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.s.declaration(tc.q)
			if d.countedLimit != tc.counted {
				t.Errorf("countedLimit = %d, want %d", d.countedLimit, tc.counted)
			}
			if want := tc.s.queues.Declaration(tc.q); d.Quorum != want.Quorum || d.Durable != want.Durable || len(d.Args) != len(want.Args) {
				t.Errorf("declaration = %+v, want %+v", d.QueueDeclaration, want)
			}
		})
	}
}

func TestExchangeInReason(t *testing.T) {
	for reason, want := range map[string]string{
		"NOT_FOUND - no exchange 'logs' in vhost '/'":                               "logs",
		"NOT_FOUND - no exchange 'it's' in vhost 'v'":                               "it's",
		"ACCESS_REFUSED - access to exchange 'x' in vhost 'v' refused for user 'u'": "x",
		"NOT_FOUND - no queue 'q' in vhost '/'":                                     "",
	} {
		got, ok := exchangeInReason(reason)
		if got != want || ok != (want != "") {
			t.Errorf("exchangeInReason(%q) = %q, %v; want %q", reason, got, ok, want)
		}
	}
}

func TestTables(t *testing.T) {
	h := driver.Headers{"s": "x", "n": 7, "u": uint64(8), "nested": driver.Headers{"k": 1}, "list": []any{driver.Headers{"a": true}}}
	table, err := toTable(h)
	if err != nil {
		t.Fatal(err)
	}
	if err := table.Validate(); err != nil {
		t.Fatalf("converted table is not valid AMQP: %v", err)
	}
	if table["n"] != int64(7) || table["u"] != int64(8) {
		t.Errorf("integers: got %#v and %#v, want int64", table["n"], table["u"])
	}
	if _, ok := table["nested"].(amqp.Table); !ok {
		t.Errorf("nested: got %T, want amqp.Table", table["nested"])
	}
	if _, err := toTable(driver.Headers{"bad": struct{}{}}); !errors.Is(err, driver.ErrInvalid) || !strings.Contains(err.Error(), `"bad"`) {
		t.Errorf("unsupported type: got %v, want ErrInvalid naming the header", err)
	}
	if _, err := toTable(driver.Headers{"big": uint64(1) << 63}); !errors.Is(err, driver.ErrInvalid) {
		t.Errorf("uint64 past int64: got %v, want ErrInvalid", err)
	}
	// RabbitMQ closes the whole connection over these (541, or the
	// client's own short-string check): refused before sending.
	for name, h := range map[string]driver.Headers{
		"NaN":            {"x": math.NaN()},
		"+Inf":           {"x": math.Inf(1)},
		"-Inf float32":   {"x": float32(math.Inf(-1))},
		"nested NaN":     {"x": driver.Headers{"y": math.NaN()}},
		"256-byte name":  {strings.Repeat("k", 256): "v"},
		"nested 256":     {"x": map[string]any{strings.Repeat("k", 256): 1}},
		"NaN in a slice": {"x": []any{1.5, math.NaN()}},
	} {
		if _, err := toTable(h); !errors.Is(err, driver.ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
	plain := driver.Headers{"a": "b"}
	if tt, _ := toTable(plain); len(tt) != 1 {
		t.Errorf("plain headers: got %v", tt)
	}

	back := fromTable(amqp.Table{"t": amqp.Table{"k": "v"}, "l": []any{amqp.Table{"k": "v"}}})
	if _, ok := back["t"].(driver.Headers); !ok {
		t.Errorf("fromTable nested: got %T, want driver.Headers", back["t"])
	}
	if _, ok := back["l"].([]any)[0].(driver.Headers); !ok {
		t.Errorf("fromTable in array: got %T, want driver.Headers", back["l"].([]any)[0])
	}
}

func TestExpiration(t *testing.T) {
	for d, want := range map[time.Duration]string{0: "", time.Microsecond: "1", 1500 * time.Millisecond: "1500"} {
		if got := expiration(d); got != want {
			t.Errorf("expiration(%v) = %q, want %q", d, got, want)
		}
	}
	for s, want := range map[string]time.Duration{"": 0, "60000": time.Minute, "junk": 0, "-5": 0} {
		if got := parseExpiration(s); got != want {
			t.Errorf("parseExpiration(%q) = %v, want %v", s, got, want)
		}
	}
}
