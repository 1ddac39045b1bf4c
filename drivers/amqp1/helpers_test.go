package amqp1_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/transport"
)

// mgmtURLEnv points the tests at RabbitMQ's management API, which they use
// to create their virtual host and to find and close its connections.
const mgmtURLEnv = "SWITCHYARD_RABBIT_MGMT_URL"

// runVhost is the RabbitMQ virtual host of this test process: created on
// first use with the amq.gen- expiry policy the package documentation asks
// for, and deleted by TestMain, so that other tests on the shared broker
// are untouched and nothing is left behind.
var runVhost struct {
	once sync.Once
	name string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if runVhost.name != "" {
		if err := newAdmin().deleteVhost(runVhost.name); err != nil {
			fmt.Fprintf(os.Stderr, "delete virtual host %s: %v\n", runVhost.name, err)
			code = max(code, 1)
		}
	}
	os.Exit(code)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// rabbitURL returns the amqp:// URL of the run's virtual host on RabbitMQ,
// skipping (or failing) t when RabbitMQ is not reachable. It registers a
// cleanup that fails t if an amq.gen- queue is left in the virtual host.
func rabbitURL(t testing.TB) string {
	t.Helper()
	raw := brokertest.AMQP1RabbitMQ().URL(t)
	runVhost.once.Do(func() {
		name := "switchyard-amqp1-" + randomHex(4)
		runVhost.err = newAdmin().createVhost(name)
		runVhost.name = name
	})
	if runVhost.err != nil {
		t.Fatalf("create the test virtual host (needs rabbitmq_management; %s overrides its URL): %v", mgmtURLEnv, runVhost.err)
	}
	cfg, err := transport.ParseURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	cfg.VirtualHost = runVhost.name
	t.Cleanup(func() { checkNoGenQueues(t) })
	return withPassword(cfg, raw)
}

// withPassword renders cfg with its password (Config.String hides it).
func withPassword(cfg *transport.URL, raw string) string {
	u := url.URL{Scheme: cfg.Scheme, Host: cfg.Hosts[0].String(), Path: "/" + cfg.VirtualHost}
	if cfg.User != "" || cfg.HasPassword {
		u.User = url.UserPassword(cfg.User, cfg.Password)
	}
	if _, q, ok := strings.Cut(raw, "?"); ok {
		u.RawQuery = q
	}
	return u.String()
}

// checkNoGenQueues fails t if the run's virtual host holds an amq.gen-
// queue (one the plugin made for an /exchange/ or /topic/ subscription
// and never deletes). The driver never makes one.
func checkNoGenQueues(t testing.TB) {
	t.Helper()
	queues, err := newAdmin().queues(runVhost.name)
	if err != nil {
		t.Errorf("list the queues of %s: %v", runVhost.name, err)
		return
	}
	for _, q := range queues {
		if strings.HasPrefix(q, "amq.gen-") {
			t.Errorf("queue %s left in virtual host %s", q, runVhost.name)
		}
	}
}

// rabbit4URL returns the amqp:// URL of a fresh virtual host on the
// RabbitMQ 4.3 node (brokertest.RabbitMQ4, whose AMQP 1.0 shares the AMQP
// port), deleted when t ends, skipping (or failing) t when the node is not
// reachable. The node denies transient queues.
func rabbit4URL(t testing.TB) string {
	t.Helper()
	v := brokertest.RabbitMQ4().NewVHost(t)
	scheme, rest, ok := strings.Cut(v.URL, "://")
	if !ok || scheme != "rabbit" {
		t.Fatalf("RabbitMQ 4.3 URL %q: want rabbit://", v.URL)
	}
	rabbit4VHosts.Store(v.Name, v)
	t.Cleanup(func() { rabbit4VHosts.Delete(v.Name) })
	return "amqp://" + rest
}

// rabbit4VHosts holds the virtual hosts rabbit4URL made, by name, for
// closeConnections.
var rabbit4VHosts sync.Map // string -> *brokertest.RabbitVHost

// closeConnections makes the RabbitMQ broker of url (one of rabbitURL's or
// rabbit4URL's) close every client connection of url's virtual host, and
// no other, with rabbitmqctl close_all_connections, and returns what
// rabbitmqctl said.
func closeConnections(t testing.TB, url string) string {
	t.Helper()
	cfg, err := transport.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"close_all_connections", "-p", cfg.VirtualHost, "switchyard amqp1 fault test"}
	if v, ok := rabbit4VHosts.Load(cfg.VirtualHost); ok {
		return v.(*brokertest.RabbitVHost).Broker().Rabbitmqctl(t, args...)
	}
	if cfg.VirtualHost != runVhost.name {
		t.Fatalf("closeConnections: %s is not a virtual host of this run", cfg.VirtualHost)
	}
	return brokertest.RabbitCtl(t, args...)
}

// isRabbit4 reports whether url is one of rabbit4URL's.
func isRabbit4(t testing.TB, url string) bool {
	t.Helper()
	cfg, err := transport.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	_, ok := rabbit4VHosts.Load(cfg.VirtualHost)
	return ok
}

// protonURL returns the URL of the Qpid Proton example broker, skipping
// (or failing) t when it is not reachable.
func protonURL(t testing.TB) string {
	t.Helper()
	return brokertest.ProtonBroker().URL(t)
}

// admin talks to RabbitMQ's management HTTP API.
type admin struct {
	base       string
	user, pass string
	client     *http.Client
}

func newAdmin() admin {
	base := os.Getenv(mgmtURLEnv)
	if base == "" {
		base = "http://guest:guest@127.0.0.1:15672"
	}
	u, err := url.Parse(base)
	a := admin{base: base, user: "guest", pass: "guest", client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	if err == nil && u.User != nil {
		a.user = u.User.Username()
		a.pass, _ = u.User.Password()
		u.User = nil
		a.base = u.String()
	}
	return a
}

func (a admin) do(method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	req.SetBasicAuth(a.user, a.pass)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

func (a admin) createVhost(name string) error {
	v := url.PathEscape(name)
	if err := a.do(http.MethodPut, "/api/vhosts/"+v, map[string]any{}, nil); err != nil {
		return err
	}
	if err := a.do(http.MethodPut, "/api/permissions/"+v+"/"+url.PathEscape(a.user),
		map[string]string{"configure": ".*", "write": ".*", "read": ".*"}, nil); err != nil {
		return err
	}
	// The policy the package documentation asks users to set: the
	// plugin's subscription queues expire a minute after their last use.
	return a.do(http.MethodPut, "/api/policies/"+v+"/amq-gen-expiry", map[string]any{
		"pattern": `^amq\.gen-`, "apply-to": "queues", "definition": map[string]any{"expires": 60000},
	}, nil)
}

func (a admin) deleteVhost(name string) error {
	return a.do(http.MethodDelete, "/api/vhosts/"+url.PathEscape(name), nil, nil)
}

func (a admin) queues(vhost string) ([]string, error) {
	var qs []struct {
		Name string `json:"name"`
	}
	if err := a.do(http.MethodGet, "/api/queues/"+url.PathEscape(vhost)+"?columns=name", nil, &qs); err != nil {
		return nil, err
	}
	names := make([]string, len(qs))
	for i, q := range qs {
		names[i] = q.Name
	}
	return names, nil
}

// flavour is a broker the tests run on: the name of its subtests, and
// how a test gets its URL.
type flavour struct {
	name string
	url  func(testing.TB) string
}

var (
	// RabbitMQ 3.10 with its AMQP 1.0 plugin (and the AMQP 0-9-1 side
	// connection the driver opens for topology there).
	flavourRabbitMQ = flavour{"rabbitmq", rabbitURL}
	// RabbitMQ 4.3, AMQP 1.0 in the core: v2 addresses, the /management
	// node, and no transient non-exclusive queues.
	flavourRabbitMQ4 = flavour{"rabbitmq4", rabbit4URL}
	// The Qpid Proton example broker.
	flavourProton = flavour{"proton", protonURL}
)

// eachFlavour runs test once per broker flavour, as a subtest that checks
// for leaked goroutines, with the broker's URL.
func eachFlavour(t *testing.T, test func(t *testing.T, url string)) {
	forFlavours(t, []flavour{flavourRabbitMQ, flavourRabbitMQ4, flavourProton}, test)
}

// eachRabbit is eachFlavour over the RabbitMQ flavours only, for what
// needs RabbitMQ (its topology, rabbitmqctl, the rabbit:// driver).
func eachRabbit(t *testing.T, test func(t *testing.T, url string)) {
	forFlavours(t, []flavour{flavourRabbitMQ, flavourRabbitMQ4}, test)
}

func forFlavours(t *testing.T, flavours []flavour, test func(t *testing.T, url string)) {
	t.Helper()
	for _, f := range flavours {
		t.Run(f.name, func(t *testing.T) {
			checkLeaks(t)
			test(t, f.url(t))
		})
	}
}

// orDurable is q, made durable when url is RabbitMQ 4.3's (rabbit4URL's,
// or one made from it): the node denies transient queues.
func orDurable(t testing.TB, url string, q transport.Queue) transport.Queue {
	t.Helper()
	if isRabbit4(t, url) && !q.Exclusive {
		q.Durable = true
	}
	return q
}

// checkLeaks fails t if a goroutine started from now on still runs when t
// ends, after t's other cleanups (which close its transports) have run.
func checkLeaks(t testing.TB) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}
