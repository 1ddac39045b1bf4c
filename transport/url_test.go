package transport_test

import (
	"bytes"
	"errors"
	"log/slog"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/switchyard-mq/switchyard/transport"
)

// secret is a password distinctive enough that finding it in an error or a
// log line can only mean it leaked.
const secret = "Pa55-w0rd-LEAK"

// testName keeps the password out of subtest names too.
func testName(rawURL string) string { return strings.ReplaceAll(rawURL, secret, "PASSWORD") }

func TestParseURLBad(t *testing.T) {
	tests := []struct {
		name string
		url  string
		// wantText is a fragment of the error that names the bad part.
		wantText string
	}{
		{"missing ://", "rabbit:guest:" + secret + "@localhost", `missing "://"`},
		{"no scheme separator at all", "localhost:5672", `missing "://"`},
		{"empty scheme", "://localhost", "empty scheme"},
		{"bad scheme character", "rab_bit://localhost", `'_'`},
		{"scheme starting with a digit", "9p://localhost", `'9'`},
		{"port not a number", "rabbit://guest:" + secret + "@localhost:amqp/", `port "amqp"`},
		{"port out of range", "rabbit://localhost:65536/", `port "65536"`},
		{"port zero", "rabbit://localhost:0/", `port "0"`},
		{"empty host in a list", "rabbit://guest:" + secret + "@h1:5672,,h3:5672/", "host 2: empty host"},
		{"trailing comma", "rabbit://h1,/", "host 2: empty host"},
		{"port without host", "rabbit://:5672/", "has no host name"},
		{"space in host", "rabbit://my host/", "invalid character"},
		{"bad percent-escape in password", "rabbit://guest:" + secret + "%zz@localhost/", "password is not correctly percent-escaped"},
		{"bad percent-escape in user", "rabbit://gu%zzest:" + secret + "@localhost/", "user name"},
		{"other credentials on host 2", "rabbit://guest:" + secret + "@h1,admin:" + secret + "2@h2/", "host 2 has other credentials"},
		{"unclosed IPv6 literal", "rabbit://[::1/", "IPv6"},
		{"two ports", "rabbit://127.0.0.1:5672:5673/", "neither host:port nor an IPv6 address"},
		{"bad percent-escape in virtual host", "rabbit://localhost/%zz", "virtual host"},
		{"bad percent-escape in query", "rabbit://localhost/?heartbeat=%zz", "query"},
		{"bad query beside a URL option", "zmq://?matchmaker=redis://:" + secret + "@h:1/0&x=%zz", "query"},
		{"unescaped comma in password", "rabbit://guest:" + secret + "," + secret + "@h1/", "credentials after the first host"},
		{"unescaped question mark in password", "rabbit://guest:" + secret + "?" + secret + "@h1/", `"@" in the query's option names`},
		{"unescaped slash in password", "rabbit://guest:5672/" + secret + "@h1/", `"@" after the host list`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := transport.ParseURL(tt.url)
			if err == nil {
				t.Fatalf("ParseURL(%q) = %v, want an error", tt.url, cfg)
			}
			if !errors.Is(err, transport.ErrInvalid) {
				t.Errorf("ParseURL(%q): %v, want ErrInvalid", tt.url, err)
			}
			if !strings.Contains(err.Error(), tt.wantText) {
				t.Errorf("ParseURL(%q): %q does not name the bad part (%q)", tt.url, err, tt.wantText)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("ParseURL(%q): the error shows the password: %q", tt.url, err)
			}
		})
	}
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		url  string
		want transport.URL
	}{
		{"memory://", transport.URL{Scheme: "memory"}},
		{"memory://broker-2", transport.URL{Scheme: "memory", Hosts: []transport.Host{{Name: "broker-2"}}}},
		{"RABBIT://Host/", transport.URL{Scheme: "rabbit", Hosts: []transport.Host{{Name: "Host"}}}},
		{
			"rabbit://guest:" + secret + "@h1:5672,guest:" + secret + "@h2:5673/",
			transport.URL{
				Scheme: "rabbit", User: "guest", Password: secret, HasPassword: true,
				Hosts: []transport.Host{{Name: "h1", Port: 5672}, {Name: "h2", Port: 5673}},
			},
		},
		{
			"rabbit://guest:" + secret + "@h1,h2:5672/",
			transport.URL{
				Scheme: "rabbit", User: "guest", Password: secret, HasPassword: true,
				Hosts: []transport.Host{{Name: "h1"}, {Name: "h2", Port: 5672}},
			},
		},
		{"rabbit://[::1]:5672/", transport.URL{Scheme: "rabbit", Hosts: []transport.Host{{Name: "::1", Port: 5672}}}},
		{"rabbit://[fe80::1]/", transport.URL{Scheme: "rabbit", Hosts: []transport.Host{{Name: "fe80::1"}}}},
		{"rabbit://[fe80::1%25eth0]:5672/", transport.URL{Scheme: "rabbit", Hosts: []transport.Host{{Name: "fe80::1%25eth0", Port: 5672}}}},
		{"rabbit://127.0.0.1:5672/", transport.URL{Scheme: "rabbit", Hosts: []transport.Host{{Name: "127.0.0.1", Port: 5672}}}},
		{"rabbit://h/%2Fprod", transport.URL{Scheme: "rabbit", Hosts: []transport.Host{{Name: "h"}}, VirtualHost: "/prod"}},
		{"rabbit://h/my%20vhost", transport.URL{Scheme: "rabbit", Hosts: []transport.Host{{Name: "h"}}, VirtualHost: "my vhost"}},
		{"rabbit://u%40corp:p%3Aw%40d@h/", transport.URL{
			Scheme: "rabbit", User: "u@corp", Password: "p:w@d", HasPassword: true, Hosts: []transport.Host{{Name: "h"}},
		}},
		{"rabbit://u:@h/", transport.URL{Scheme: "rabbit", User: "u", HasPassword: true, Hosts: []transport.Host{{Name: "h"}}}},
		{"rabbit://u@h/", transport.URL{Scheme: "rabbit", User: "u", Hosts: []transport.Host{{Name: "h"}}}},
		{
			"amqp://h:5672/?heartbeat=10&ssl=true&tag=a&tag=b",
			transport.URL{
				Scheme: "amqp", Hosts: []transport.Host{{Name: "h", Port: 5672}},
				Options: url.Values{"heartbeat": {"10"}, "ssl": {"true"}, "tag": {"a", "b"}},
			},
		},
		{"zmq://?rpc_zmq_matchmaker=redis", transport.URL{Scheme: "zmq", Options: url.Values{"rpc_zmq_matchmaker": {"redis"}}}},
	}
	for _, tt := range tests {
		t.Run(testName(tt.url), func(t *testing.T) {
			got, err := transport.ParseURL(tt.url)
			if err != nil {
				t.Fatalf("ParseURL(%q): %v", tt.url, err)
			}
			if tt.want.Options == nil {
				tt.want.Options = url.Values{}
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("ParseURL(%q):\n got %#v\nwant %#v", tt.url, *got, tt.want)
			}
		})
	}
}

func TestConfigRedactsPassword(t *testing.T) {
	tests := []struct {
		url  string
		want string
	}{
		{"rabbit://guest:" + secret + "@h1:5672,guest:" + secret + "@h2/vh?heartbeat=10", "rabbit://guest:xxxxx@h1:5672,h2/vh?heartbeat=10"},
		{"rabbit://guest:@h/", "rabbit://guest:xxxxx@h"},
		{"rabbit://guest@h/", "rabbit://guest@h"},
		{"rabbit://[::1]:5672/%2Fprod", "rabbit://[::1]:5672/%2Fprod"},
		{"memory://", "memory://"},
		// A URL in an option (zmq's Redis matchmaker) hides its password too.
		{"zmq://?matchmaker=redis://:" + secret + "@127.0.0.1:6379/0", "zmq://?matchmaker=redis%3A%2F%2F%3Axxxxx%40127.0.0.1%3A6379%2F0"},
		{"zmq://?matchmaker=redis://" + secret + "@127.0.0.1:6379/0", "zmq://?matchmaker=redis%3A%2F%2F" + secret + "%40127.0.0.1%3A6379%2F0"},
	}
	for _, tt := range tests {
		t.Run(testName(tt.url), func(t *testing.T) {
			cfg, err := transport.ParseURL(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if cfg.Clone().String() != tt.want {
				t.Errorf("Clone().String() = %q, want %q", cfg.Clone().String(), tt.want)
			}
		})
	}
}

// TestConfigLogValueRedacts: a Config logged with slog shows the redacted
// URL, never the password, whatever the handler.
func TestConfigLogValueRedacts(t *testing.T) {
	cfg, err := transport.ParseURL("rabbit://guest:" + secret + "@h1,h2/")
	if err != nil {
		t.Fatal(err)
	}
	for name, handler := range map[string]func(*bytes.Buffer) slog.Handler{
		"json": func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		"text": func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
	} {
		var logged bytes.Buffer
		slog.New(handler(&logged)).Info("opening", "config", cfg)
		if strings.Contains(logged.String(), secret) || !strings.Contains(logged.String(), "guest:xxxxx@h1,h2") {
			t.Errorf("%s handler: got %s, want the redacted URL", name, logged.String())
		}
	}
}
