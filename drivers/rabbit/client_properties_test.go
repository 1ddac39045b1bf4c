package rabbit

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/transport"
)

// brokerConnection is what RabbitMQ's management API says of a client
// connection.
type brokerConnection struct {
	Name             string         `json:"name"`
	UserProvidedName string         `json:"user_provided_name"`
	ClientProperties map[string]any `json:"client_properties"`
}

// TestClientProperties: RabbitMQ shows a Switchyard connection as
// Switchyard's, at its version, on Go, named as oslo.messaging names its
// connections: "<program>:<pid>:<uuid4>", a uuid of its own for each.
func TestClientProperties(t *testing.T) {
	onStacks(t, func(t *testing.T, x *tester) {
		x.open("")
		x.open("")
		conns := x.waitConnections(2)

		wantName := regexp.MustCompile(`^` + regexp.QuoteMeta(filepath.Base(os.Args[0])) + `:` + strconv.Itoa(os.Getpid()) +
			`:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
		want := map[string]any{
			"product":  "Switchyard",
			"version":  moduleVersion(),
			"platform": "Go " + strings.TrimPrefix(runtime.Version(), "go"),
		}
		var names []string
		for _, c := range conns {
			for key, value := range want {
				if got := c.ClientProperties[key]; got != value {
					t.Errorf("connection %s: client property %s = %#v, want %#v", c.Name, key, got, value)
				}
			}
			name, _ := c.ClientProperties["connection_name"].(string)
			if !wantName.MatchString(name) || c.UserProvidedName != name {
				t.Errorf("connection %s: connection_name %q (shown as %q), want <program>:<pid>:<uuid4> matching %s",
					c.Name, name, c.UserProvidedName, wantName)
			}
			names = append(names, name)
		}
		if distinct := slices.Compact(slices.Sorted(slices.Values(names))); len(distinct) != len(conns) {
			t.Errorf("connection names %q are not one per connection", names)
		}
	})
}

// TestModuleVersion: the version is never empty, and is "devel" unless
// the build information has a real one.
func TestModuleVersion(t *testing.T) {
	v := moduleVersion()
	if v == "" || v == "(devel)" || v != "devel" && !strings.HasPrefix(v, "v") {
		t.Fatalf("moduleVersion() = %q, want a module version or devel", v)
	}
}

// waitConnections returns the virtual host's client connections once the
// management API lists n (it learns of them at its statistics interval,
// 5 s by default), polling it; it skips the test without the API.
func (x *tester) waitConnections(n int) []brokerConnection {
	x.t.Helper()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		conns, answered, err := x.connections()
		switch {
		case !answered && brokertest.Required():
			x.t.Fatalf("the RabbitMQ management API does not answer (%v); enable it with rabbitmq-plugins enable rabbitmq_management", err)
		case !answered:
			x.t.Skipf("the RabbitMQ management API does not answer (%v); enable it with rabbitmq-plugins enable rabbitmq_management", err)
		case err != nil:
			x.t.Fatal(err)
		}
		if len(conns) >= n {
			return conns
		}
		select {
		case <-tick.C:
		case <-x.ctx.Done():
			x.t.Fatalf("the management API lists %d connections in virtual host %s, want %d: %v", len(conns), x.vh.Name, n, x.ctx.Err())
		}
	}
}

// connections lists the virtual host's client connections through the
// management API of the broker's first host; answered is false when the
// API could not be reached.
func (x *tester) connections() (conns []brokerConnection, answered bool, err error) {
	cfg, err := transport.ParseURL(x.vh.URL)
	if err != nil {
		return nil, true, err
	}
	port := cmp.Or(x.vh.Broker().ManagementPort, "15672")
	endpoint := "http://" + net.JoinHostPort(cfg.Hosts[0].Name, port) + "/api/vhosts/" + url.PathEscape(x.vh.Name) + "/connections"
	ctx, cancel := context.WithTimeout(x.ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return nil, true, err
	}
	user, pass := cfg.User, cfg.Password
	if user == "" {
		user, pass = "guest", "guest"
	}
	req.SetBasicAuth(user, pass)
	req.Close = true // no idle connection left for the goroutine leak check
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, true, fmt.Errorf("GET %s: %s", endpoint, resp.Status)
	}
	return conns, true, json.NewDecoder(resp.Body).Decode(&conns)
}
