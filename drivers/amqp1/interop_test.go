package amqp1_test

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/transport"
)

// pythonProton is Debian's python3, the one python3-qpid-proton installs
// for (a pyenv or venv python does not see it).
const pythonProton = "/usr/bin/python3"

// interopMessage is what testdata/interop.py sends and prints.
type interopMessage struct {
	Body            string         `json:"body"`
	ID              string         `json:"id,omitempty"`
	CorrelationID   string         `json:"correlation_id,omitempty"`
	ReplyTo         string         `json:"reply_to,omitempty"`
	Subject         string         `json:"subject,omitempty"`
	ContentType     string         `json:"content_type,omitempty"`
	ContentEncoding string         `json:"content_encoding,omitempty"`
	Durable         bool           `json:"durable"`
	CreationTime    float64        `json:"creation_time,omitempty"`
	Properties      map[string]any `json:"properties,omitempty"`
}

// requirePythonProton skips t (or fails it under SWITCHYARD_BROKERS=required)
// when Debian's python3 cannot import proton.
func requirePythonProton(t *testing.T) {
	t.Helper()
	if err := exec.Command(pythonProton, "-c", "import proton").Run(); err != nil {
		msg := "the interop peer needs " + pythonProton + " with proton: apt-get install -y --no-install-recommends python3-qpid-proton (" + err.Error() + ")"
		if brokertest.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// peer runs testdata/interop.py.
func peer(t *testing.T, ctx context.Context, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(ctx, pythonProton, append([]string{"testdata/interop.py"}, args...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("interop.py %s: %v", strings.Join(args[:2], " "), err)
	}
	return out
}

// TestInterop exchanges messages with an independent AMQP 1.0 client, Qpid
// Proton's Python one, both ways, on every broker: bodies, ids,
// correlation ids, reply-to, subject (the routing key) and application
// properties (the model's headers) arrive intact.
func TestInterop(t *testing.T) {
	requirePythonProton(t)
	tests := []struct {
		flavour
		// address is how the Python peer names a queue: RabbitMQ 3.10's
		// plugin takes /amq/queue/Q, RabbitMQ 4 the v2 address /queues/Q
		// (percent-encoded; the test's names need none), the Proton broker
		// any name.
		address func(queue string) string
		// keyIsQueue says a message the peer sends to a queue's address
		// reaches the driver with the queue's name as its routing key, not
		// its subject: RabbitMQ 4 routes a message sent to /queues/Q
		// through the default exchange with the key Q and says so in the
		// x-routing-key annotation, which the driver reads on RabbitMQ 4
		// (as the rabbit driver reports the key basic.deliver carries),
		// whereas RabbitMQ 3.10's plugin and the Proton broker leave the
		// subject as the key.
		keyIsQueue bool
	}{
		{flavourRabbitMQ, func(q string) string { return "/amq/queue/" + q }, false},
		{flavourRabbitMQ4, func(q string) string { return "/queues/" + url.PathEscape(q) }, true},
		{flavourProton, func(q string) string { return q }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			raw := tt.url(t)
			tr := openT(t, ctx, raw)
			cfg := tr.URL()
			peerURL := "amqp://" + cfg.Hosts[0].String()
			if cfg.User != "" {
				peerURL = "amqp://" + cfg.User + ":" + cfg.Password + "@" + cfg.Hosts[0].String()
			}
			vhost := cfg.VirtualHost
			declare := func() string {
				q, err := tr.DeclareQueue(ctx, orDurable(t, raw, transport.Queue{Name: "interop." + randomHex(4)}))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _, _ = tr.DeleteQueue(context.Background(), q) })
				return q
			}

			t.Run("go to python", func(t *testing.T) {
				q := declare()
				// Persistent where the broker keeps messages; the Proton
				// broker refuses it (no CapDurable).
				persistent := tr.Capabilities().Has(transport.CapDurable)
				sent := transport.Message{
					Body: []byte("from go"), MessageID: "go-id-1", CorrelationID: "go-corr-1", ReplyTo: "go.replies",
					ContentType: "text/plain", ContentEncoding: "utf-8", Persistent: persistent,
					Timestamp: time.Date(2024, 5, 17, 10, 30, 0, 0, time.UTC),
					Headers:   transport.Headers{"x-string": "value", "x-int": int64(42), "x-bool": true},
				}
				if err := tr.Publish(ctx, "", q, sent); err != nil {
					t.Fatal(err)
				}
				var got interopMessage
				if err := json.Unmarshal(peer(t, ctx, "receive", peerURL, vhost, tt.address(q), "20"), &got); err != nil {
					t.Fatal(err)
				}
				want := interopMessage{
					Body: "from go", ID: "go-id-1", CorrelationID: "go-corr-1", ReplyTo: "go.replies", Subject: q,
					ContentType: "text/plain", ContentEncoding: "utf-8", Durable: persistent,
					CreationTime: float64(sent.Timestamp.Unix()),
					Properties:   map[string]any{"x-string": "value", "x-int": float64(42), "x-bool": true},
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("python got\n%+v\nwant\n%+v", got, want)
				}
			})

			t.Run("python to go", func(t *testing.T) {
				q := declare()
				spec := interopMessage{
					Body: "from python", ID: "py-id-1", CorrelationID: "py-corr-1", ReplyTo: "py.replies",
					Subject: "py.subject", ContentType: "application/json", ContentEncoding: "utf-8", Durable: true,
					CreationTime: 1715941800,
					Properties:   map[string]any{"p-string": "value", "p-int": 7, "p-bool": false},
				}
				js, _ := json.Marshal(spec)
				c, err := tr.Consume(ctx, q, transport.ConsumeOptions{})
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				peer(t, ctx, "send", peerURL, vhost, tt.address(q), string(js))
				d, err := c.Receive(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if err := d.Ack(); err != nil {
					t.Fatal(err)
				}
				wantKey := spec.Subject
				if tt.keyIsQueue {
					wantKey = q
				}
				checks := []struct {
					what      string
					got, want any
				}{
					{"body", string(d.Body), spec.Body},
					{"message id", d.MessageID, spec.ID},
					{"correlation id", d.CorrelationID, spec.CorrelationID},
					{"reply-to", d.ReplyTo, spec.ReplyTo},
					{"subject (routing key)", d.RoutingKey, wantKey},
					{"content type", d.ContentType, spec.ContentType},
					{"content encoding", d.ContentEncoding, spec.ContentEncoding},
					{"persistent", d.Persistent, true},
					{"redelivered", d.Redelivered, false},
					{"timestamp", d.Timestamp, time.Unix(1715941800, 0).UTC()},
					{"header p-string", d.Headers["p-string"], "value"},
					{"header p-int", d.Headers["p-int"], int64(7)},
					{"header p-bool", d.Headers["p-bool"], false},
				}
				for _, c := range checks {
					if !reflect.DeepEqual(c.got, c.want) {
						t.Errorf("%s: got %#v, want %#v", c.what, c.got, c.want)
					}
				}
			})
		})
	}
}
