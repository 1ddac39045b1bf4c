package brokertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"testing"

	"github.com/switchyard-mq/switchyard/drivers/memory"
	"github.com/switchyard-mq/switchyard/transport"
)

// SwitchyardBroker is `switchyard broker`: drivers/memory's AMQP 0-9-1
// server, which NewVHost starts in the test's process, one server with a
// broker of its own on a loopback port for each virtual host, so that
// nothing needs installing. It has no management API, no policies and no
// rabbitmqctl: a test that needs them checks Broker.Embedded and leaves
// that part out (using them fails the test).
func SwitchyardBroker() Broker {
	return Broker{
		Name:       "switchyard broker",
		HowToStart: "nothing to start: the test's process serves it",
		Embedded:   true,
	}
}

// SwitchyardStack is Debian 12's python3-oslo.messaging 14 against the
// switchyard broker, with oslo's default options: the interop matrix's
// stack for a machine with no RabbitMQ.
func SwitchyardStack() Stack {
	return Stack{
		Name:           "switchyard-broker+oslo-14",
		Broker:         SwitchyardBroker(),
		Python:         []string{"/usr/bin/python3"},
		HowToGetPython: "apt-get install python3-oslo.messaging (as .ci/run does)",
	}
}

// newSwitchyardVHost serves a fresh in-process broker over AMQP 0-9-1 on
// a loopback port until t ends: the broker is the virtual host (the
// server has only "/"), so tests sharing the process share nothing.
func newSwitchyardVHost(t testing.TB, b Broker) *RabbitVHost {
	t.Helper()
	var suffix [4]byte
	_, _ = rand.Read(suffix[:])
	name := "sy-" + vhostSafe(t.Name()) + "-" + hex.EncodeToString(suffix[:])
	srv, err := memory.NewServer(memory.ServerConfig{Broker: name, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	l, err := srv.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(context.Background(), l) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-served; !errors.Is(err, memory.ErrServerClosed) {
			t.Errorf("brokertest: switchyard broker %s: %v", name, err)
		}
	})
	raw := "rabbit://guest:guest@" + l.Addr().String() + "/"
	cfg, err := transport.ParseURL(raw)
	if err != nil {
		t.Fatalf("brokertest: %v", err)
	}
	return &RabbitVHost{Name: name, URL: raw, broker: b, cfg: cfg}
}
