package tutorials

import (
	"errors"
	"testing"

	"github.com/switchyard-mq/switchyard/transport"
)

// TestTutorialURL: Open asks the rabbit driver for quorum queues, as the
// originals declare "hello" and "task_queue", unless the URL decides, and
// leaves other backends' URLs alone.
func TestTutorialURL(t *testing.T) {
	tests := []struct {
		name   string
		url    string
		quorum string // the rabbit_quorum_queue option Open passes; "" for none
	}{
		{"rabbit", "rabbit://guest:guest@127.0.0.1:5672/", "true"},
		{"rabbit with a virtual host and options", "rabbit://127.0.0.1/vh?heartbeat_timeout_threshold=10", "true"},
		{"rabbits", "rabbits://127.0.0.1/", "true"},
		{"quorum queues refused", "rabbit://127.0.0.1/?rabbit_quorum_queue=false", "false"},
		{"quorum queues asked for", "rabbit://127.0.0.1/?rabbit_quorum_queue=1", "1"},
		{"HA queues, which exclude quorum queues", "rabbit://127.0.0.1/?rabbit_ha_queues=true", ""},
		{"memory", "memory://", ""},
		{"amqp", "amqp://127.0.0.1/", ""},
		{"zmq", "zmq://127.0.0.1/", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := tutorialURL(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			if got := u.Options.Get(quorumOption); got != tt.quorum {
				t.Errorf("%s=%q, want %q (URL %s)", quorumOption, got, tt.quorum, u)
			}
			want, err := transport.ParseURL(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			for k := range want.Options {
				if u.Options.Get(k) != want.Options.Get(k) {
					t.Errorf("option %s=%q, want %q kept", k, u.Options.Get(k), want.Options.Get(k))
				}
			}
			if u.Scheme != want.Scheme || u.VirtualHost != want.VirtualHost || u.User != want.User || u.Password != want.Password {
				t.Errorf("URL %s, want %s with at most %s added", u, want, quorumOption)
			}
		})
	}
}

func TestTutorialURLMalformed(t *testing.T) {
	if _, err := tutorialURL("memory"); !errors.Is(err, transport.ErrInvalid) {
		t.Errorf("got %v, want ErrInvalid", err)
	}
}
