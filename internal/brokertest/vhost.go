package brokertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/transport"
)

// ctlTimeout bounds one rabbitmqctl or management API call.
const ctlTimeout = 60 * time.Second

// defaultManagementPort is where the rabbitmq_management plugin listens
// unless a Broker says otherwise.
const defaultManagementPort = "15672"

// RabbitVHost is a RabbitMQ virtual host made for one test, so that the
// test's queues, exchanges and connections are its own on a shared broker.
type RabbitVHost struct {
	// Name is the virtual host's name.
	Name string
	// URL is the broker's transport URL with Name as its virtual host.
	URL string

	broker Broker
	cfg    *transport.URL
}

// NewRabbitVHost creates a fresh virtual host on the RabbitMQ broker that
// RabbitMQ().URL finds, grants the URL's user
// every permission on it, and deletes it when t ends: RabbitMQ().NewVHost.
func NewRabbitVHost(t testing.TB) *RabbitVHost {
	t.Helper()
	return RabbitMQ().NewVHost(t)
}

// NewVHost creates a fresh virtual host on the RabbitMQ broker b
// (RabbitMQ, RabbitMQ4, or a node of internal/rabbitnode) that b.URL
// finds (skipping or failing t as URL does), grants the URL's user every
// permission on it, and deletes it when t ends. It uses the broker's
// management API when it answers, and its rabbitmqctl otherwise.
func (b Broker) NewVHost(t testing.TB) *RabbitVHost {
	t.Helper()
	if b.Embedded {
		return newSwitchyardVHost(t, b)
	}
	return newRabbitVHost(t, b, b.URL(t))
}

func newRabbitVHost(t testing.TB, b Broker, base string) *RabbitVHost {
	t.Helper()
	cfg, err := transport.ParseURL(base)
	if err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	name := "sy-" + vhostSafe(t.Name()) + "-" + hex.EncodeToString(suffix[:])
	v := &RabbitVHost{Name: name, broker: b, cfg: cfg}
	v.URL = vhostURL(base, name)

	user := cfg.User
	if user == "" {
		user = "guest"
	}
	if err := v.manage(http.MethodPut, "/api/vhosts/"+url.PathEscape(name), ""); err != nil {
		v.ctl(t, "add_vhost", name)
		v.ctl(t, "set_permissions", "-p", name, user, ".*", ".*", ".*")
	} else if err := v.manage(http.MethodPut, "/api/permissions/"+url.PathEscape(name)+"/"+url.PathEscape(user),
		`{"configure":".*","write":".*","read":".*"}`); err != nil {
		t.Fatalf("brokertest: grant %s on virtual host %s: %v", user, name, err)
	}
	t.Cleanup(func() {
		if err := v.manage(http.MethodDelete, "/api/vhosts/"+url.PathEscape(name), ""); err != nil {
			v.ctl(t, "delete_vhost", name)
		}
	})
	return v
}

// Broker is the broker the virtual host is on.
func (v *RabbitVHost) Broker() Broker { return v.broker }

// CloseConnections makes the broker close every client connection of the
// virtual host (and no other), as an operator or a failing node would.
func (v *RabbitVHost) CloseConnections(t testing.TB) {
	t.Helper()
	v.ctl(t, "close_all_connections", "-p", v.Name, "switchyard fault test")
}

// SetPolicy applies a policy (RabbitMQ's set_policy: name, a pattern of
// names, what it applies to, such as "queues", and its definition) in the
// virtual host, through the broker's management API. It fails t if the
// API refuses it or does not answer.
func (v *RabbitVHost) SetPolicy(t testing.TB, name, pattern, applyTo string, definition map[string]any) {
	t.Helper()
	if v.broker.Embedded {
		t.Fatalf("brokertest: the %s has no policies: a test that sets one checks Broker.Embedded and leaves that out there", v.broker.Name)
	}
	body, err := json.Marshal(map[string]any{"pattern": pattern, "apply-to": applyTo, "definition": definition})
	if err != nil {
		t.Fatalf("brokertest: policy %s: %v", name, err)
	}
	if err := v.manage(http.MethodPut, "/api/policies/"+url.PathEscape(v.Name)+"/"+url.PathEscape(name), string(body)); err != nil {
		t.Fatalf("brokertest: set policy %s on virtual host %s: %v (%s)", name, v.Name, err, v.broker.HowToStart)
	}
}

// Version returns the RabbitMQ version that the broker's management API
// reports, such as "4.3.6". It skips t when the API does not answer.
func (v *RabbitVHost) Version(t testing.TB) string {
	t.Helper()
	version, _ := v.entity(t, "/api/overview")["rabbitmq_version"].(string)
	return version
}

// Queue returns what the management API says about a queue of the
// virtual host (name, durable, auto_delete, exclusive, arguments, ...), or
// nil if it does not exist. It needs the rabbitmq_management plugin and
// skips t without it.
func (v *RabbitVHost) Queue(t testing.TB, name string) map[string]any {
	t.Helper()
	return v.entity(t, "/api/queues/"+url.PathEscape(v.Name)+"/"+url.PathEscape(name))
}

// Exchange is Queue for an exchange (name, type, durable, auto_delete,
// arguments, ...).
func (v *RabbitVHost) Exchange(t testing.TB, name string) map[string]any {
	t.Helper()
	return v.entity(t, "/api/exchanges/"+url.PathEscape(v.Name)+"/"+url.PathEscape(name))
}

// Queues returns what the management API says about every queue of the
// virtual host, by name.
func (v *RabbitVHost) Queues(t testing.TB) map[string]map[string]any {
	t.Helper()
	return v.list(t, "/api/queues/"+url.PathEscape(v.Name))
}

// Exchanges returns what the management API says about every exchange of
// the virtual host, by name, but the ones every virtual host has (the
// default exchange and the amq. ones).
func (v *RabbitVHost) Exchanges(t testing.TB) map[string]map[string]any {
	t.Helper()
	all := v.list(t, "/api/exchanges/"+url.PathEscape(v.Name))
	for name := range all {
		if name == "" || strings.HasPrefix(name, "amq.") {
			delete(all, name)
		}
	}
	return all
}

// Connections returns what the management API says about every client
// connection to the virtual host, by name. The API learns of a connection
// when it opens, not at once: poll for a count.
func (v *RabbitVHost) Connections(t testing.TB) map[string]map[string]any {
	t.Helper()
	return v.list(t, "/api/vhosts/"+url.PathEscape(v.Name)+"/connections")
}

// Channels is Connections for the channels of the virtual host's
// connections.
func (v *RabbitVHost) Channels(t testing.TB) map[string]map[string]any {
	t.Helper()
	return v.list(t, "/api/vhosts/"+url.PathEscape(v.Name)+"/channels")
}

// list reads a management API listing, by name.
// noManagement skips t, or fails it under SWITCHYARD_BROKERS=required,
// when the broker's management API does not answer.
func (v *RabbitVHost) noManagement(t testing.TB, err error) {
	t.Helper()
	if v.broker.Embedded {
		t.Fatalf("brokertest: the %s has no management API: a test that inspects the broker checks Broker.Embedded and leaves that out there", v.broker.Name)
	}
	msg := fmt.Sprintf("brokertest: the %s management API is not available (%v); enable it with rabbitmq-plugins enable rabbitmq_management (%s)",
		v.broker.Name, err, v.broker.HowToStart)
	if Required() {
		t.Fatal(msg + " [SWITCHYARD_BROKERS=required]")
	}
	t.Skip(msg)
}

func (v *RabbitVHost) list(t testing.TB, path string) map[string]map[string]any {
	t.Helper()
	var rows []map[string]any
	status, err := v.get(path, &rows)
	switch {
	case err != nil:
		v.noManagement(t, err)
	case status != http.StatusOK:
		t.Fatalf("brokertest: GET %s: status %d", path, status)
	}
	byName := make(map[string]map[string]any, len(rows))
	for _, row := range rows {
		name, _ := row["name"].(string)
		byName[name] = row
	}
	return byName
}

func (v *RabbitVHost) entity(t testing.TB, path string) map[string]any {
	t.Helper()
	var out map[string]any
	status, err := v.get(path, &out)
	switch {
	case err != nil:
		v.noManagement(t, err)
	case status == http.StatusNotFound:
		return nil
	case status != http.StatusOK:
		t.Fatalf("brokertest: GET %s: status %d", path, status)
	}
	return out
}

// ctl runs the broker's rabbitmqctl, failing t if it fails.
func (v *RabbitVHost) ctl(t testing.TB, args ...string) {
	t.Helper()
	if v.broker.Embedded {
		t.Fatalf("brokertest: the %s has no rabbitmqctl (rabbitmqctl %v)", v.broker.Name, args)
	}
	v.broker.Rabbitmqctl(t, args...)
}

// RabbitCtl runs rabbitmqctl with args for the node of RabbitMQ() (the
// system's, or the 4.3 node when SWITCHYARD_RABBIT_URL names it) and
// returns its output, failing t if it fails or takes longer than a minute.
// It is for what leaves the broker as it was for other tests (listing,
// closing a test's own connections): the broker is shared, so no test
// stops, restarts or reconfigures it (internal/rabbitnode starts nodes
// that a test may).
func RabbitCtl(t testing.TB, args ...string) string {
	t.Helper()
	return RabbitMQ().Rabbitmqctl(t, args...)
}

// Rabbitmqctl runs the RabbitMQ broker b's rabbitmqctl (b.Ctl) with args and
// returns its output, failing t if it fails or takes longer than a minute.
func (b Broker) Rabbitmqctl(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ctlTimeout)
	defer cancel()
	command := append(b.ctlCommand(), args...)
	out, err := exec.CommandContext(ctx, command[0], command[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("brokertest: %s: %v\n%s", strings.Join(command, " "), err, out)
	}
	return string(out)
}

// ctlCommand is b.Ctl, or the system's rabbitmqctl, in a slice of its own.
func (b Broker) ctlCommand() []string {
	if len(b.Ctl) == 0 {
		return []string{"rabbitmqctl"}
	}
	return append([]string(nil), b.Ctl...)
}

// manage calls the management API of the broker's first host.
func (v *RabbitVHost) manage(method, path, body string) error {
	resp, err := v.call(method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return nil
}

// get reads a JSON document from the management API into out.
func (v *RabbitVHost) get(path string, out any) (int, error) {
	resp, err := v.call(http.MethodGet, path, "")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	return resp.StatusCode, json.NewDecoder(resp.Body).Decode(out)
}

func (v *RabbitVHost) call(method, path, body string) (*http.Response, error) {
	if v.broker.NoManagement || v.broker.Embedded {
		return nil, fmt.Errorf("%s has no management API", v.broker.Name)
	}
	if len(v.cfg.Hosts) == 0 {
		return nil, fmt.Errorf("no host in the broker URL")
	}
	port := v.broker.ManagementPort
	if port == "" {
		port = defaultManagementPort
	}
	endpoint := "http://" + net.JoinHostPort(v.cfg.Hosts[0].Name, port) + path
	ctx, cancel := context.WithTimeout(context.Background(), ctlTimeout)
	req, err := http.NewRequestWithContext(ctx, method, endpoint, strings.NewReader(body))
	if err != nil {
		cancel()
		return nil, err
	}
	user, pass := v.cfg.User, v.cfg.Password
	if user == "" && !v.cfg.HasPassword {
		user, pass = "guest", "guest"
	}
	req.Close = true // no idle connection left behind for goroutine leak checks
	req.SetBasicAuth(user, pass)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = cancelOnClose{resp.Body, cancel}
	return resp, nil
}

// cancelOnClose releases a request's context with its response body.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// vhostSafe keeps the characters of a test name that need no escaping
// anywhere a virtual host name goes, and at most 40 of them.
func vhostSafe(name string) string {
	var b strings.Builder
	for _, r := range name {
		if b.Len() >= 40 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// vhostURL replaces the virtual host of a transport URL, keeping its query.
func vhostURL(base, vhost string) string {
	scheme, rest, _ := strings.Cut(base, "://")
	authority, query := rest, ""
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		authority = rest[:i]
		if j := strings.IndexByte(rest, '?'); j >= 0 {
			query = rest[j:]
		}
	}
	return scheme + "://" + authority + "/" + url.PathEscape(vhost) + query
}
