package tutorials_test

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/switchyard-mq/switchyard/drivers/memory"
)

// TestCrossLanguageSwitchyardBroker runs the cross-language tutorials
// against Switchyard's own broker served over AMQP 0-9-1 instead of
// RabbitMQ: the pika originals, unchanged, and the Go programs on a
// rabbit:// URL print what they print on RabbitMQ. Each run gets a server
// and a broker of its own.
func TestCrossLanguageSwitchyardBroker(t *testing.T) {
	python := requirePika(t, debianPython)
	testCrossLanguage(t, python, func(t *testing.T) string {
		s, err := memory.NewServer(memory.ServerConfig{Broker: "tutorials " + t.Name()})
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- s.Serve(context.Background(), l) }()
		t.Cleanup(func() {
			_ = s.Close()
			if err := <-served; !errors.Is(err, memory.ErrServerClosed) {
				t.Errorf("Serve: %v", err)
			}
		})
		return "rabbit://guest:guest@" + l.Addr().String() + "/"
	})
}
