package bench

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/internal/rawoslo"
	"github.com/switchyard-mq/switchyard/transport"
)

// TestRabbitClientURL: the amqp091-go URL built from a rabbit:// URL
// reaches the same broker, credentials and virtual host, and the confirms
// option reads as the driver reads it.
func TestRabbitClientURL(t *testing.T) {
	tests := []struct {
		url                   string
		host                  string
		port                  int
		user, password, vhost string
		confirms              bool
	}{
		{"rabbit://guest:guest@127.0.0.1:5672/", "127.0.0.1", 5672, "guest", "guest", "/", true},
		{"rabbit://h1", "h1", 5672, "guest", "guest", "/", true},
		{"rabbit://nova:p%40ss%2Fw%3Ard%3F%23@h1:5673,h2:5674/nova?confirms=false", "h1", 5673, "nova", "p@ss/w:rd?#", "nova", false},
		{"rabbit://h?confirms=no&heartbeat_timeout_threshold=30", "h", 5672, "guest", "guest", "/", false},
		{"rabbit://u:p@[::1]:5672/a%2Fb", "::1", 5672, "u", "p", "a/b", true},
		{"rabbit://u:@h//", "h", 5672, "u", "", "/", true},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			u, err := transport.ParseURL(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			r, err := newRabbitClient(u)
			if err != nil {
				t.Fatal(err)
			}
			a, err := amqp.ParseURI(r.amqpURL)
			if err != nil {
				t.Fatalf("amqp091-go cannot parse the URL: %v", err)
			}
			if a.Host != tt.host || a.Port != tt.port || a.Username != tt.user || a.Password != tt.password || a.Vhost != tt.vhost || r.confirms != tt.confirms {
				t.Errorf("host %q port %d user %q password %q vhost %q confirms %v; want %q %d %q %q %q %v",
					a.Host, a.Port, a.Username, a.Password, a.Vhost, r.confirms, tt.host, tt.port, tt.user, tt.password, tt.vhost, tt.confirms)
			}
			if tt.password != "" && strings.Contains(r.where, tt.password) {
				t.Errorf("the broker's description %q shows the password", r.where)
			}
		})
	}
}

// TestAMQP1ClientOptions: the raw go-amqp client does what the URL's
// options make the driver do.
func TestAMQP1ClientOptions(t *testing.T) {
	tests := []struct {
		url        string
		addr       string
		presettled bool
		prefetch   int
		flavour    string
	}{
		{"amqp://guest:guest@127.0.0.1:5672/", "127.0.0.1:5672", false, 0, "auto"},
		{"amqp://h?presettled=yes&prefetch_size=50&flavour=Proton", "h:5672", true, 50, "proton"},
		{"amqp://h:5673?presettled=0&flavour=rabbitmq", "h:5673", false, 0, "rabbitmq"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			u, err := transport.ParseURL(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			a, err := newAMQP1Client(u)
			if err != nil {
				t.Fatal(err)
			}
			if a.addr != tt.addr || a.presettled != tt.presettled || a.prefetch != tt.prefetch || a.flavour != tt.flavour {
				t.Errorf("addr %q presettled %v prefetch %d flavour %q; want %q %v %d %q",
					a.addr, a.presettled, a.prefetch, a.flavour, tt.addr, tt.presettled, tt.prefetch, tt.flavour)
			}
		})
	}
}

// TestRawClientOptionErrors: a malformed option the raw client reads is
// refused, naming it, as the driver refuses it.
func TestRawClientOptionErrors(t *testing.T) {
	for _, tt := range []struct{ url, want string }{
		{"rabbit://h?confirms=maybe", "option confirms"},
		{"amqp://h?presettled=maybe", "option presettled"},
		{"amqp://h?prefetch_size=0", "option prefetch_size"},
	} {
		t.Run(tt.url, func(t *testing.T) {
			u, err := transport.ParseURL(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := rawClients(u); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("rawClients: %v, want an error about %s", err, tt.want)
			}
		})
	}
}

// TestRawAMQP1Client runs the go-amqp baseline, which the harness uses
// only when an AMQP 1.0 driver is registered, on RabbitMQ's AMQP 1.0
// plugin, and checks that it leaves no queue behind.
func TestRawAMQP1Client(t *testing.T) {
	vh := brokertest.NewRabbitVHost(t)
	u, err := transport.ParseURL("amqp" + strings.TrimPrefix(vh.URL, "rabbit"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := newAMQP1Client(u)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	probe, err := raw.dial(ctx)
	if err != nil {
		msg := "RabbitMQ's AMQP 1.0 plugin does not answer (" + err.Error() + "); run .ci/run, or: rabbitmq-plugins enable rabbitmq_amqp1_0"
		if brokertest.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	if err := probe.close(); err != nil {
		t.Fatal(err)
	}
	lim := Limits{Messages: 200, Duration: 2 * time.Second, Size: 100, Inflight: 4}
	for _, c := range Cases() {
		if c.Notify {
			continue // no raw notifications on amqp://: Switchyard runs the case alone
		}
		t.Run(c.Name, func(t *testing.T) {
			var m meter
			if err := runCase(ctx, c, raw, lim, &m); err != nil || m.ops.Load() == 0 {
				t.Fatalf("%d operations, error %v", m.ops.Load(), err)
			}
		})
	}
	if left := brokertest.RabbitCtl(t, "list_queues", "-p", vh.Name, "name"); strings.Contains(left, "switchyard-bench") {
		t.Errorf("the baseline left\n%s", left)
	}
}

// TestRawOsloClient runs every case on RabbitMQ: raw-oslo-client runs
// beside the raw client in the RPC cases only, serves and matches calls
// by oslo's envelope, gives Switchyard's calls their ratio to it, and
// leaves no queue or exchange behind.
func TestRawOsloClient(t *testing.T) {
	vh := brokertest.NewRabbitVHost(t)
	u, err := transport.ParseURL(vh.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewBackend(u, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.Note(), rawOsloName) {
		t.Errorf("the note does not name %s: %q", rawOsloName, b.Note())
	}
	results, err := Run(t.Context(), io.Discard, []*Backend{b}, Cases(), tinyLimits)
	if err != nil {
		t.Fatal(err)
	}
	ran := map[string]bool{}
	for _, r := range results {
		if r.Client != rawOsloName {
			if !r.Raw && r.Case.RPC && r.FloorRatio <= 0 {
				t.Errorf("%s through Switchyard: no ratio to %s", r.Case.Name, rawOsloName)
			}
			continue
		}
		ran[r.Case.Name] = true
		if !r.Raw || !r.Floor || r.Err != nil || r.Ops != int64(tinyLimits.Messages) || r.P50 <= 0 {
			t.Errorf("%s through %s: raw %v, floor %v, %d ops, p50 %v, error %v", r.Case.Name, r.Client, r.Raw, r.Floor, r.Ops, r.P50, r.Err)
		}
	}
	for _, c := range Cases() {
		if ran[c.Name] != c.RPC {
			t.Errorf("%s ran through %s: %v, want %v (the RPC cases only)", c.Name, rawOsloName, ran[c.Name], c.RPC)
		}
	}
	for _, what := range []string{"list_queues", "list_exchanges"} {
		if left := brokertest.RabbitCtl(t, what, "-p", vh.Name, "name"); strings.Contains(left, "switchyard-bench") {
			t.Errorf("the runs left (%s)\n%s", what, left)
		}
	}
}

// TestRawOsloServerDropsRepeats: raw-oslo-client's server answers a request in
// oslo's envelope once, dropping its repeat, and its replies reach the
// caller by the _msg_id in their body.
func TestRawOsloServerDropsRepeats(t *testing.T) {
	server := &rawoslo.Server[json.RawMessage, json.RawMessage]{Method: "echo", Handle: func(a json.RawMessage) json.RawMessage { return a }}
	body, err := rawoslo.Wrap(rawoslo.Request[json.RawMessage]{Method: "echo", Args: json.RawMessage(`{"data":"x"}`), MsgID: "7", ReplyQ: "reply", UniqueID: rawoslo.NewID()})
	if err != nil {
		t.Fatal(err)
	}
	reply, replyQ, ok := server.Answer(body)
	if !ok || replyQ != "reply" {
		t.Fatalf("Answer: %v, reply queue %q", ok, replyQ)
	}
	var answer rawoslo.Reply[json.RawMessage]
	if err := rawoslo.Unwrap(reply, &answer); err != nil || answer.MsgID != "7" || answer.Result == nil || string(*answer.Result) != `{"data":"x"}` {
		t.Errorf("reply %+v, error %v", answer, err)
	}
	if _, _, ok := server.Answer(body); ok {
		t.Error("a repeated _unique_id was answered again")
	}
}
