package config_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/config"
	_ "github.com/switchyard-mq/switchyard/drivers/memory"
	"github.com/switchyard-mq/switchyard/notify"
	"github.com/switchyard-mq/switchyard/transport"
)

// novaPassword is the password of testdata/nova.conf's transport URL, as
// oslo.config reads it ("$$" in the file is one '$').
const novaPassword = "S3cr$t-pw"

// noEnv is an empty environment.
func noEnv(string) (string, bool) { return "", false }

// env returns an environment holding vars.
func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

// writeFile writes a config file into a temporary directory.
func writeFile(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestLoadNovaConf: the sample Nova file configures the service, with the
// values oslo.config itself reads from it (checked with oslo.config 9.0).
func TestLoadNovaConf(t *testing.T) {
	cfg, err := config.Load(config.Sources{Files: []string{"testdata/nova.conf"}, Env: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	want := config.Config{
		TransportURL:           "rabbit://nova:" + strings.ReplaceAll(novaPassword, "$", "$") + "@rabbit1:5672,nova:" + novaPassword + "@rabbit2:5672/nova",
		ControlExchange:        "nova",
		RPCResponseTimeout:     180 * time.Second,
		ExecutorThreadPoolSize: 32,
		TransportOptions: url.Values{
			"amqp_durable_queues":         {"true"},
			"amqp_auto_delete":            {"false"},
			"rabbit_transient_queues_ttl": {"600"},
			"heartbeat_timeout_threshold": {"30"},
			"rabbit_qos_prefetch_count":   {"10"},
			"rabbit_retry_interval":       {"1"},
			"rabbit_retry_backoff":        {"2"},
			"rabbit_interval_max":         {"30"},
			"rabbit_ha_queues":            {"false"},
			"ssl":                         {"false"},
		},
		Notifications: config.Notifications{
			Driver: notify.MessagingV2, Topics: []string{"notifications", "notifications_designate"}, Retry: 5,
		},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Load(nova.conf) =\n%#v\nwant\n%#v", cfg, want)
	}

	tc, err := cfg.TransportConfig()
	if err != nil {
		t.Fatal(err)
	}
	if tc.Scheme != "rabbit" || tc.User != "nova" || tc.Password != novaPassword || tc.VirtualHost != "nova" || len(tc.Hosts) != 2 {
		t.Errorf("TransportConfig() = %v (user %q), want rabbit://nova:...@rabbit1:5672,rabbit2:5672/nova", tc, tc.User)
	}
	for name, value := range map[string]string{
		"control_exchange": "nova", "amqp_durable_queues": "true", "heartbeat_timeout_threshold": "30",
		"rabbit_qos_prefetch_count": "10", "rabbit_transient_queues_ttl": "600",
	} {
		if got := tc.Options.Get(name); got != value {
			t.Errorf("TransportConfig() option %s = %q, want %q", name, got, value)
		}
	}
}

// TestLoadBadFiles: each bad variant of the sample fails with the file,
// the line, the section and the option, and never shows the password.
func TestLoadBadFiles(t *testing.T) {
	tests := []struct {
		file        string
		want        string // the error's beginning
		unsupported bool
	}{
		{"nova_unknown_option.conf", "testdata/nova_unknown_option.conf:90: [oslo_messaging_rabbit] rabbit_qos_prefetch_cout: unknown option (did you mean rabbit_qos_prefetch_count?)", false},
		{"nova_bad_url.conf", `testdata/nova_bad_url.conf:18: [DEFAULT] transport_url: transport URL "rabbit://nova:xxxxx@rabbit1:amqp,nova:xxxxx@rabbit2:5672/nova": host 1: port "amqp" is not a number from 1 to 65535`, false},
		{"nova_bad_timeout.conf", `testdata/nova_bad_timeout.conf:20: [DEFAULT] rpc_response_timeout: "0.5" is not a duration of at least 1 seconds`, false},
		{"nova_unsupported_option.conf", "testdata/nova_unsupported_option.conf:95: [oslo_messaging_rabbit] kombu_compression: is not supported by Switchyard: Switchyard sends message bodies uncompressed", true},
		{"nova_bad_bool.conf", `testdata/nova_bad_bool.conf:85: [oslo_messaging_rabbit] amqp_durable_queues: "maybe" is not a boolean`, false},
		{"nova_bad_driver.conf", `testdata/nova_bad_driver.conf:80: [oslo_messaging_notifications] driver: unknown driver "kafka"`, false},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			cfg, err := config.Load(config.Sources{Files: []string{"testdata/" + tt.file}, Env: noEnv})
			if err == nil {
				t.Fatalf("Load(%s) = %v, want an error", tt.file, cfg)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("Load(%s):\n got %q\nwant %q...", tt.file, err, tt.want)
			}
			if strings.Contains(err.Error(), "S3cr") {
				t.Errorf("Load(%s): the error shows the password: %q", tt.file, err)
			}
			var oe *config.OptionError
			if !errors.As(err, &oe) || !errors.Is(err, transport.ErrInvalid) {
				t.Errorf("Load(%s): %T %v, want an *OptionError matching ErrInvalid", tt.file, err, err)
			}
			if errors.Is(err, transport.ErrUnsupported) != tt.unsupported {
				t.Errorf("Load(%s): errors.Is(err, ErrUnsupported) = %v, want %v", tt.file, !tt.unsupported, tt.unsupported)
			}
		})
	}
}

// TestINIRules: the file syntax follows oslo.config's parser.
func TestINIRules(t *testing.T) {
	tests := []struct {
		name string
		text string
		// check inspects the loaded configuration; nil when wantErr is set.
		check   func(t *testing.T, c config.Config)
		wantErr string
	}{
		{"colon separator and quotes", "[DEFAULT]\ncontrol_exchange: \"nova\"\n", func(t *testing.T, c config.Config) {
			if c.ControlExchange != "nova" {
				t.Errorf("control_exchange = %q, want nova", c.ControlExchange)
			}
		}, ""},
		{"first of '=' and ':' splits", "[DEFAULT]\ntransport_url = rabbit://u:p@h:5672/\n", func(t *testing.T, c config.Config) {
			if c.TransportURL != "rabbit://u:p@h:5672/" {
				t.Errorf("transport_url = %q", c.TransportURL)
			}
		}, ""},
		{"section names are case-insensitive", "[OSLO_Messaging_Rabbit]\namqp_durable_queues = YES\n", func(t *testing.T, c config.Config) {
			if c.TransportOptions.Get("amqp_durable_queues") != "true" {
				t.Errorf("amqp_durable_queues = %q, want true", c.TransportOptions.Get("amqp_durable_queues"))
			}
		}, ""},
		{"lower-case default is another section", "[default]\ncontrol_exchange = nova\n", func(t *testing.T, c config.Config) {
			if c.ControlExchange != "openstack" {
				t.Errorf("control_exchange = %q, want the default", c.ControlExchange)
			}
		}, ""},
		{"booleans", "[oslo_messaging_rabbit]\namqp_durable_queues = On\namqp_auto_delete = 0\nssl = False\nrabbit_ha_queues = yes\n",
			func(t *testing.T, c config.Config) {
				want := map[string]string{"amqp_durable_queues": "true", "amqp_auto_delete": "false", "ssl": "false", "rabbit_ha_queues": "true"}
				for k, v := range want {
					if got := c.TransportOptions.Get(k); got != v {
						t.Errorf("%s = %q, want %q", k, got, v)
					}
				}
			}, ""},
		{"continuation lines and lists", "[oslo_messaging_notifications]\ntopics = a,\n  b ,\n\tc,\n", func(t *testing.T, c config.Config) {
			if !slices.Equal(c.Notifications.Topics, []string{"a", "b", "c"}) {
				t.Errorf("topics = %q, want a, b, c", c.Notifications.Topics)
			}
		}, ""},
		{"comments, blank lines and the last value win", "# a comment\n; another\n[DEFAULT]\nrpc_response_timeout = 10\n\n  \nrpc_response_timeout = 20\n", func(t *testing.T, c config.Config) {
			if c.RPCResponseTimeout != 20*time.Second {
				t.Errorf("rpc_response_timeout = %v, want 20s", c.RPCResponseTimeout)
			}
		}, ""},
		{"substitutions", "[DEFAULT]\nhost = rabbit1\nexch = nova\ncontrol_exchange = ${exch}\ntransport_url = rabbit://u:a$$b\\$c@$host:5672/\n", func(t *testing.T, c config.Config) {
			if c.TransportURL != "rabbit://u:a$b$c@rabbit1:5672/" || c.ControlExchange != "nova" {
				t.Errorf("transport_url = %q, control_exchange = %q", c.TransportURL, c.ControlExchange)
			}
		}, ""},
		{"group substitution and a lone $", "[DEFAULT]\ntransport_url = rabbit://u:p$1@${other.host}/\n[other]\nhost = h\n", func(t *testing.T, c config.Config) {
			if c.TransportURL != "rabbit://u:p$1@h/" {
				t.Errorf("transport_url = %q", c.TransportURL)
			}
		}, ""},
		{"durations in seconds or as Go durations", "[DEFAULT]\nrpc_response_timeout = 1m30s\n[oslo_messaging_rabbit]\nrabbit_transient_queues_ttl = 1.5\nheartbeat_timeout_threshold = 2m\n",
			func(t *testing.T, c config.Config) {
				if c.RPCResponseTimeout != 90*time.Second || c.TransportOptions.Get("rabbit_transient_queues_ttl") != "1.5" ||
					c.TransportOptions.Get("heartbeat_timeout_threshold") != "120" {
					t.Errorf("rpc_response_timeout = %v, TransportOptions = %v; want 1m30s, ttl 1.5 and heartbeat 120", c.RPCResponseTimeout, c.TransportOptions)
				}
			}, ""},
		{"empty values leave the default", "[DEFAULT]\nrpc_response_timeout =\ncontrol_exchange =\n", func(t *testing.T, c config.Config) {
			if c.RPCResponseTimeout != 60*time.Second || c.ControlExchange != "openstack" {
				t.Errorf("rpc_response_timeout = %v, control_exchange = %q: want the defaults", c.RPCResponseTimeout, c.ControlExchange)
			}
		}, ""},
		{"deprecated names", "[DEFAULT]\nnotification_driver = messaging\nnotification_topics = old\n[oslo_messaging_rabbit]\nrabbit_use_ssl = true\nkombu_ssl_ca_certs = /ca.pem\n",
			func(t *testing.T, c config.Config) {
				if c.Notifications.Driver != notify.Messaging || !slices.Equal(c.Notifications.Topics, []string{"old"}) ||
					c.TransportOptions.Get("ssl") != "true" || c.TransportOptions.Get("ssl_ca_file") != "/ca.pem" {
					t.Errorf("deprecated names not read: %v", c)
				}
			}, ""},
		{"current name beats deprecated", "[oslo_messaging_notifications]\ntopics = new\n[DEFAULT]\nnotification_topics = old\n", func(t *testing.T, c config.Config) {
			if !slices.Equal(c.Notifications.Topics, []string{"new"}) {
				t.Errorf("topics = %q, want new", c.Notifications.Topics)
			}
		}, ""},
		{"python-only options are accepted", "[oslo_messaging_rabbit]\nrpc_conn_pool_size = 100\nheartbeat_in_pthread = true\nkombu_reconnect_delay = 0.5\ndirect_mandatory_flag = True\n", func(t *testing.T, c config.Config) {
			if len(c.TransportOptions) != 0 {
				t.Errorf("TransportOptions = %v, want none", c.TransportOptions)
			}
		}, ""},
		{"unknown sections and DEFAULT options are ignored", "[DEFAULT]\nfoo = $undefined\n[keystone_authtoken]\nbar = baz\n[database]\n  \nconnection = x\n", func(t *testing.T, c config.Config) {}, ""},

		{"trailing comments are part of the value", "[DEFAULT]\ncontrol_exchange = nova # the exchange\n", nil,
			`f.conf:2: [DEFAULT] control_exchange: "nova # the exchange" is not a valid name`},
		{"assignment before any section", "control_exchange = nova\n", nil, `f.conf:1: syntax: "control_exchange" is set before any [section]`},
		{"continuation without a key", "[DEFAULT]\n  indented\n", nil, `f.conf:2: syntax: unexpected continuation line "indented"`},
		{"unclosed section", "[DEFAULT\n", nil, `f.conf:1: syntax: section "[DEFAULT" does not end with ]`},
		{"empty section", "[]\n", nil, "f.conf:1: syntax: empty section name"},
		{"no separator", "[DEFAULT]\njust words\n", nil, `f.conf:2: syntax: no '=' or ':' in an assignment: "just words"`},
		{"empty key", "[DEFAULT]\n= value\n", nil, "f.conf:2: syntax: empty key"},
		{"unresolved substitution", "[DEFAULT]\ncontrol_exchange = $nothere\n", nil, "f.conf:2: [DEFAULT] control_exchange: $nothere is not set in the file"},
		{"substitution cycle", "[DEFAULT]\na = $b\nb = $a\ncontrol_exchange = $a\n", nil, "f.conf:4: [DEFAULT] control_exchange: substitutions nested more than 10 deep"},
		{"unknown notification option", "[oslo_messaging_notifications]\ntopic = x\n", nil, "f.conf:2: [oslo_messaging_notifications] topic: unknown option (did you mean topics?)"},
		{"several notification drivers", "[oslo_messaging_notifications]\ndriver = messagingv2\ndriver = log\n", nil, "f.conf:3: [oslo_messaging_notifications] driver: several notification drivers are not supported by Switchyard"},
		{"routing driver", "[oslo_messaging_notifications]\ndriver = routing\n", nil, `f.conf:2: [oslo_messaging_notifications] driver: driver "routing" is not supported by Switchyard`},
		{"negative retry", "[oslo_messaging_notifications]\nretry = -2\n", nil, `f.conf:2: [oslo_messaging_notifications] retry: "-2" is not a whole number of at least -1`},
		{"prefetch out of range", "[oslo_messaging_rabbit]\nrabbit_qos_prefetch_count = 70000\n", nil, `f.conf:2: [oslo_messaging_rabbit] rabbit_qos_prefetch_count: "70000" is not a whole number from 0 to 65535`},
		{"unsupported value", "[oslo_messaging_rabbit]\nkombu_failover_strategy = shuffle\n", nil, `f.conf:2: [oslo_messaging_rabbit] kombu_failover_strategy: "shuffle" is not supported by Switchyard (only round-robin): the driver tries the URL's hosts round-robin`},
		{"ignored options are still checked", "[oslo_messaging_rabbit]\nrpc_conn_pool_size = many\n", nil, `f.conf:2: [oslo_messaging_rabbit] rpc_conn_pool_size: "many" is not a whole number`},
		{"deprecated place, bad value", "[DEFAULT]\nrabbit_ha_queues = perhaps\n", nil, `f.conf:2: [DEFAULT] rabbit_ha_queues: "perhaps" is not a boolean`},
		{"bad option in the URL's query", "[DEFAULT]\ntransport_url = rabbit://h/?rabbit_qos_prefetch_count=x\n", nil,
			`f.conf:2: [DEFAULT] transport_url option rabbit_qos_prefetch_count: "x" is not a whole number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f.conf")
			if err := os.WriteFile(path, []byte(tt.text), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(config.Sources{Files: []string{path}})
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("Load = %v, want an error %q", cfg, tt.wantErr)
				}
				if got := strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), ""); !strings.HasPrefix(got, tt.wantErr) {
					t.Errorf("Load:\n got %q\nwant %q...", got, tt.wantErr)
				}
				if !errors.Is(err, transport.ErrInvalid) {
					t.Errorf("Load: %v does not match ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			tt.check(t, cfg)
		})
	}
}

// TestPrecedence: flag > environment > file > defaults, option by option.
func TestPrecedence(t *testing.T) {
	file := "[DEFAULT]\ntransport_url = memory://from-file\ncontrol_exchange = file\nrpc_response_timeout = 30\n" +
		"[oslo_messaging_rabbit]\nrabbit_transient_queues_ttl = 100\n[oslo_messaging_notifications]\ntopics = file\n"
	defaults := config.Default()
	defaults.ControlExchange = "defaults"
	defaults.ExecutorThreadPoolSize = 8
	defaults.Notifications.Driver = notify.Log
	tests := []struct {
		name  string
		file  bool
		env   map[string]string
		flags []string
		want  func(c *config.Config) // edits the expected configuration, starting from defaults
	}{
		{"defaults only", false, nil, nil, func(c *config.Config) {}},
		{"file over defaults", true, nil, nil, func(c *config.Config) {
			c.TransportURL, c.ControlExchange, c.RPCResponseTimeout = "memory://from-file", "file", 30*time.Second
			c.TransportOptions.Set("rabbit_transient_queues_ttl", "100")
			c.Notifications.Topics = []string{"file"}
		}},
		{"environment over file", true, map[string]string{
			"SWITCHYARD_URL": "memory://from-env", "SWITCHYARD_CONTROL_EXCHANGE": "env",
			"SWITCHYARD_RABBIT_TRANSIENT_QUEUES_TTL": "200", "SWITCHYARD_NOTIFICATIONS_DRIVER": "messagingv2",
			"SWITCHYARD_BROKERS": "required", // not an option: not read
		}, nil, func(c *config.Config) {
			c.TransportURL, c.ControlExchange, c.RPCResponseTimeout = "memory://from-env", "env", 30*time.Second
			c.TransportOptions.Set("rabbit_transient_queues_ttl", "200")
			c.Notifications.Topics = []string{"file"}
			c.Notifications.Driver = notify.MessagingV2
		}},
		{"flags over environment", true, map[string]string{"SWITCHYARD_URL": "memory://from-env", "SWITCHYARD_CONTROL_EXCHANGE": "env"},
			[]string{"-transport-url", "memory://from-flag", "-rpc-response-timeout", "5", "-notifications-topics", "a,b", "-amqp-durable-queues"},
			func(c *config.Config) {
				c.TransportURL, c.ControlExchange, c.RPCResponseTimeout = "memory://from-flag", "env", 5*time.Second
				c.TransportOptions.Set("rabbit_transient_queues_ttl", "100")
				c.TransportOptions.Set("amqp_durable_queues", "true")
				c.Notifications.Topics = []string{"a", "b"}
			}},
		{"an empty variable leaves the option to the file", true, map[string]string{"SWITCHYARD_CONTROL_EXCHANGE": ""}, nil, func(c *config.Config) {
			c.TransportURL, c.ControlExchange, c.RPCResponseTimeout = "memory://from-file", "file", 30*time.Second
			c.TransportOptions.Set("rabbit_transient_queues_ttl", "100")
			c.Notifications.Topics = []string{"file"}
		}},
	}
	path := writeFile(t, "service.conf", file)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			flags := config.RegisterFlags(fs)
			if err := fs.Parse(tt.flags); err != nil {
				t.Fatal(err)
			}
			s := config.Sources{Defaults: &defaults, Env: env(tt.env), Flags: flags}
			if tt.file {
				s.Files = []string{path}
			}
			got, err := config.Load(s)
			if err != nil {
				t.Fatal(err)
			}
			want := defaults.Clone()
			tt.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Load =\n%v\nwant\n%v", got, want)
			}
		})
	}
}

// TestConfigFileSources: -config-file beats SWITCHYARD_CONFIG_FILE, which
// beats Sources.Files; of several files the later wins.
func TestConfigFileSources(t *testing.T) {
	a := writeFile(t, "a.conf", "[DEFAULT]\ncontrol_exchange = a\nrpc_response_timeout = 1\n")
	b := writeFile(t, "b.conf", "[DEFAULT]\ncontrol_exchange = b\n")
	c := writeFile(t, "c.conf", "[DEFAULT]\ncontrol_exchange = c\n")
	tests := []struct {
		name    string
		files   []string
		envFile string
		flags   []string
		want    string
		timeout time.Duration
	}{
		{"Sources.Files in order", []string{a, b}, "", nil, "b", time.Second},
		{"SWITCHYARD_CONFIG_FILE replaces Sources.Files", []string{a, b}, c, nil, "c", 60 * time.Second},
		{"-config-file replaces both", []string{c}, c, []string{"-config-file", b, "-config-file", a}, "a", time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			flags := config.RegisterFlags(fs)
			if err := fs.Parse(tt.flags); err != nil {
				t.Fatal(err)
			}
			vars := map[string]string{}
			if tt.envFile != "" {
				vars["SWITCHYARD_CONFIG_FILE"] = tt.envFile
			}
			cfg, err := config.Load(config.Sources{Files: tt.files, Env: env(vars), Flags: flags})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.ControlExchange != tt.want || cfg.RPCResponseTimeout != tt.timeout {
				t.Errorf("control_exchange = %q, rpc_response_timeout = %v; want %q, %v", cfg.ControlExchange, cfg.RPCResponseTimeout, tt.want, tt.timeout)
			}
		})
	}
	if _, err := config.Load(config.Sources{Files: []string{filepath.Join(t.TempDir(), "missing.conf")}}); err == nil || !strings.Contains(err.Error(), "missing.conf") {
		t.Errorf("Load of a missing file: %v, want an error naming it", err)
	}
}

// TestURLQueryOptions: options in a transport URL's query count as set by
// the source of the URL, overriding that source's own options (as oslo's
// URL overrides [oslo_messaging_rabbit]), and are overridden by higher
// sources. Other drivers' options stay in the URL.
func TestURLQueryOptions(t *testing.T) {
	path := writeFile(t, "f.conf", "[DEFAULT]\ntransport_url = rabbit://h/?heartbeat_timeout_threshold=10&rabbit_qos_prefetch_count=5&control_exchange=q&zz=1\n"+
		"[oslo_messaging_rabbit]\nheartbeat_timeout_threshold = 20\nrabbit_qos_prefetch_count = 6\n")
	cfg, err := config.Load(config.Sources{Files: []string{path}, Env: env(map[string]string{"SWITCHYARD_RABBIT_QOS_PREFETCH_COUNT": "7"})})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TransportURL != "rabbit://h/?zz=1" {
		t.Errorf("TransportURL = %q, want the URL without the options Switchyard read", cfg.TransportURL)
	}
	if h, p := cfg.TransportOptions.Get("heartbeat_timeout_threshold"), cfg.TransportOptions.Get("rabbit_qos_prefetch_count"); h != "10" || p != "7" {
		t.Errorf("heartbeat_timeout_threshold = %q (want 10, the URL's), rabbit_qos_prefetch_count = %q (want 7, the environment's)", h, p)
	}
	if cfg.ControlExchange != "q" {
		t.Errorf("control_exchange = %q, want q from the URL", cfg.ControlExchange)
	}

	// Another driver's URL keeps the rabbit driver's option names it takes
	// too: amqps:// reads ssl_ca_file and the others from its query.
	amqps := "amqps://h/?ssl_ca_file=%2Fca.pem&ssl_cert_file=%2Fc.pem&ssl_key_file=%2Fk.pem"
	cfg, err = config.Load(config.Sources{Env: env(map[string]string{"SWITCHYARD_URL": amqps})})
	if err != nil {
		t.Fatal(err)
	}
	tc, err := cfg.TransportConfig()
	if err != nil {
		t.Fatal(err)
	}
	if got := tc.Options.Get("ssl_ca_file") + " " + tc.Options.Get("ssl_cert_file") + " " + tc.Options.Get("ssl_key_file"); got != "/ca.pem /c.pem /k.pem" {
		t.Errorf("amqps:// TLS files after loading = %q, want the URL's", got)
	}
}

// TestTransportConfigBySchem: the rabbit driver's options go to rabbit://
// and rabbits:// URLs only; the options the rpc and notify layers read go
// to every scheme; the URL's own query wins.
func TestTransportConfigByScheme(t *testing.T) {
	cfg := config.Default()
	cfg.ControlExchange = "nova"
	cfg.TransportOptions = url.Values{"amqp_durable_queues": {"true"}, "heartbeat_timeout_threshold": {"30"}, "ssl": {"false"}}
	tests := []struct {
		url  string
		want url.Values
	}{
		{"memory://x", url.Values{"control_exchange": {"nova"}, "amqp_durable_queues": {"true"}}},
		{"zmq://?matchmaker=memory", url.Values{"control_exchange": {"nova"}, "amqp_durable_queues": {"true"}, "matchmaker": {"memory"}}},
		{"rabbit://h/", url.Values{"control_exchange": {"nova"}, "amqp_durable_queues": {"true"}, "heartbeat_timeout_threshold": {"30"}, "ssl": {"false"}}},
		{"rabbits://h/?heartbeat_timeout_threshold=5&control_exchange=x", url.Values{"control_exchange": {"x"}, "amqp_durable_queues": {"true"}, "heartbeat_timeout_threshold": {"5"}, "ssl": {"false"}}},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			c := cfg.Clone()
			c.TransportURL = tt.url
			tc, err := c.TransportConfig()
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(tc.Options, tt.want) {
				t.Errorf("options = %v, want %v", tc.Options, tt.want)
			}
		})
	}
}

// TestValidate: a configuration built in code is checked field by field.
func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *config.Config)
		want string
	}{
		{"bad URL", func(c *config.Config) { c.TransportURL = "rabbit//u:secret@h" }, "config TransportURL"},
		{"empty control exchange", func(c *config.Config) { c.ControlExchange = "" }, "config ControlExchange"},
		{"zero timeout", func(c *config.Config) { c.RPCResponseTimeout = 0 }, "config RPCResponseTimeout"},
		{"zero pool", func(c *config.Config) { c.ExecutorThreadPoolSize = 0 }, "config ExecutorThreadPoolSize"},
		{"unknown transport option", func(c *config.Config) { c.TransportOptions.Set("flavour", "x") }, "option flavour is not one of"},
		{"bad transport option", func(c *config.Config) { c.TransportOptions.Set("ssl", "maybe") }, `option ssl: "maybe" is not a boolean`},
		{"unsupported option", func(c *config.Config) { c.TransportOptions.Set("kombu_compression", "gzip") }, "option kombu_compression is not one of"},
		{"bad driver", func(c *config.Config) { c.Notifications.Driver = "kafka" }, `config Notifications.Driver: unknown driver "kafka"`},
		{"no topics", func(c *config.Config) { c.Notifications.Topics = nil }, "config Notifications.Topics: no topics"},
		{"bad retry", func(c *config.Config) { c.Notifications.Retry = -3 }, "config Notifications.Retry"},
		{"bad notification URL", func(c *config.Config) { c.Notifications.TransportURL = "::" }, "config Notifications.TransportURL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := config.Default()
			tt.edit(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, transport.ErrInvalid) {
				t.Errorf("Validate() = %v, want ErrInvalid with %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("Validate() shows the password: %v", err)
			}
			if _, err := c.Open(t.Context()); err == nil {
				t.Errorf("Open succeeded on an invalid configuration")
			}
		})
	}
	if err := config.Default().Validate(); err != nil {
		t.Errorf("Default().Validate() = %v", err)
	}
}

// TestEnvironmentAndFlagErrors: bad values name their variable or flag.
func TestEnvironmentAndFlagErrors(t *testing.T) {
	_, err := config.Load(config.Sources{Env: env(map[string]string{"SWITCHYARD_RPC_RESPONSE_TIMEOUT": "60 s", "SWITCHYARD_URL": "rabbit://u:secret@h:x/"})})
	for _, want := range []string{`environment: SWITCHYARD_RPC_RESPONSE_TIMEOUT: "60 s" is not a duration`, "environment: SWITCHYARD_URL: transport URL"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load: %v, want %q", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "secret") {
		t.Errorf("Load shows the password: %v", err)
	}

	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var usage bytes.Buffer
	fs.SetOutput(&usage)
	config.RegisterFlags(fs)
	err = fs.Parse([]string{"-rabbit-qos-prefetch-count", "lots"})
	if err == nil || !strings.Contains(err.Error(), `-rabbit-qos-prefetch-count: "lots" is not a whole number`) {
		t.Errorf("Parse: %v, want the flag named", err)
	}

	fs = flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	flags := config.RegisterFlags(fs)
	if err := fs.Parse([]string{"-transport-url", "rabbit://u:secret@h:x/"}); err != nil {
		t.Fatalf("Parse: %v (a URL is checked by Load, which hides its password)", err)
	}
	_, err = config.Load(config.Sources{Flags: flags})
	if err == nil || !strings.Contains(err.Error(), "command line: -transport-url: transport URL") || strings.Contains(err.Error(), "secret") {
		t.Errorf("Load: %v, want the flag named and the password hidden", err)
	}
}

// TestSecretsNeverShown: no form of a configuration shows a password.
func TestSecretsNeverShown(t *testing.T) {
	const secret = "Pa55-w0rd-LEAK"
	cfg := config.Default()
	cfg.TransportURL = "rabbit://nova:" + secret + "@h1,h2/"
	cfg.Notifications.TransportURL = "rabbit://notify:" + secret + "@h3/"
	cfg.TransportOptions = url.Values{"matchmaker": {"redis://:" + secret + "@h4:6379/0"}}
	var jsonLog, textLog bytes.Buffer
	slog.New(slog.NewJSONHandler(&jsonLog, nil)).Info("config", "cfg", cfg)
	slog.New(slog.NewTextHandler(&textLog, nil)).Info("config", "cfg", cfg)

	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var usage bytes.Buffer
	fs.SetOutput(&usage)
	config.RegisterFlags(fs)
	if err := fs.Parse([]string{"-transport-url", cfg.TransportURL}); err != nil {
		t.Fatal(err)
	}
	fs.PrintDefaults()
	fs.VisitAll(func(f *flag.Flag) { usage.WriteString(f.Value.String()) })

	forms := map[string]string{
		"String": cfg.String(), "%v": fmt.Sprintf("%v", cfg), "%+v": fmt.Sprintf("%+v", cfg), "%#v": fmt.Sprintf("%#v", cfg),
		//lint:ignore S1025 the %s form of a pointer is what is tested
		"%s pointer": fmt.Sprintf("%s", &cfg), "JSON log": jsonLog.String(), "text log": textLog.String(), "flags": usage.String(),
	}
	for name, s := range forms {
		if strings.Contains(s, secret) {
			t.Errorf("%s shows the password: %s", name, s)
		}
	}
	if !strings.Contains(jsonLog.String(), `"transport_url":"rabbit://nova:xxxxx@h1,h2"`) {
		t.Errorf("JSON log = %s, want the redacted URL", jsonLog.String())
	}
	if !strings.Contains(cfg.String(), "notifications.transport_url=rabbit://notify:xxxxx@h3") {
		t.Errorf("String() = %s, want the redacted notification URL", cfg.String())
	}
}
