package config_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/config"
	"github.com/switchyard-mq/switchyard/notify"
	"github.com/switchyard-mq/switchyard/transport"
)

// TestNotificationQueueOptions: [oslo_messaging_notifications]
// declare_queues, queue_max_length and queue_message_ttl set
// Notifications.Queues, which NotifierOptions and ListenerOptions carry:
// the notifier declares no queue, or a bounded one that a listener built
// with ListenerOptions declares alike.
func TestNotificationQueueOptions(t *testing.T) {
	for _, tt := range []struct {
		name, text string
		want       notify.QueuePolicy
		wantErr    string
	}{
		{"oslo's default", "", notify.QueuePolicy{}, ""},
		{"publish only", "declare_queues = false\n", notify.QueuePolicy{PublishOnly: true}, ""},
		{"bounded", "queue_max_length = 1000\nqueue_message_ttl = 3600\n", notify.QueuePolicy{MaxLength: 1000, MessageTTL: time.Hour}, ""},
		{"negative length", "queue_max_length = -1\n", notify.QueuePolicy{}, "queue_max_length"},
		{"not declared and bounded", "declare_queues = no\nqueue_max_length = 10\n", notify.QueuePolicy{}, "Notifications.Queues"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "f.conf", "[DEFAULT]\ntransport_url = memory://"+strings.ReplaceAll(t.Name(), "/", ".")+
				"\n[oslo_messaging_notifications]\ndriver = messagingv2\n"+tt.text)
			cfg, err := config.Load(config.Sources{Files: []string{path}})
			if tt.wantErr != "" {
				if !errors.Is(err, transport.ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load: %v, want ErrInvalid naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Notifications.Queues != tt.want {
				t.Fatalf("Notifications.Queues = %+v, want %+v", cfg.Notifications.Queues, tt.want)
			}
			tr, err := cfg.Open(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			n, err := notify.NewNotifier(tr, "svc.host1", cfg.NotifierOptions()...)
			if err != nil {
				t.Fatal(err)
			}
			if err := n.Info(t.Context(), "svc.started", nil); err != nil {
				t.Fatal(err)
			}
			// What waits in the notifier's queue, if it declared one.
			purged, err := tr.PurgeQueue(t.Context(), "notifications.info")
			if tt.want.PublishOnly {
				if !errors.Is(err, transport.ErrNotFound) {
					t.Errorf("purge notifications.info: %d, %v; want ErrNotFound (no queue declared)", purged, err)
				}
				return
			}
			if err != nil || purged != 1 {
				t.Errorf("purge notifications.info: %d, %v; want the one notification", purged, err)
			}
			_, err = tr.DeclareQueue(t.Context(), transport.Queue{Name: "notifications.info", MaxLength: tt.want.MaxLength, MessageTTL: tt.want.MessageTTL})
			if err != nil {
				t.Errorf("the queue is not declared with the configured bounds: %v", err)
			}
			l, err := notify.NewListener(tr, []transport.Target{{Topic: "notifications"}},
				[]notify.Endpoint{{Handle: func(_ context.Context, _ *notify.Notification) error { return nil }}}, cfg.ListenerOptions()...)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Start(t.Context()); err != nil {
				t.Fatalf("a listener with ListenerOptions: %v", err)
			}
			if err := l.Stop(t.Context()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestNoNotificationDriverWarns: a configuration with no
// [oslo_messaging_notifications] driver makes noop notifiers, which say at
// start that notifications are dropped and how to send them.
func TestNoNotificationDriverWarns(t *testing.T) {
	for _, tt := range []struct {
		name, text string
		wantWarn   bool
	}{
		{"no driver", "[DEFAULT]\ncontrol_exchange = nova\n", true},
		{"driver noop", "[oslo_messaging_notifications]\ndriver = noop\n", true},
		{"driver messagingv2", "[oslo_messaging_notifications]\ndriver = messagingv2\n", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load(config.Sources{Files: []string{writeFile(t, "f.conf", tt.text)}})
			if err != nil {
				t.Fatal(err)
			}
			cfg.TransportURL = "memory://" + strings.ReplaceAll(t.Name(), "/", ".")
			var logs bytes.Buffer
			logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
			tr, err := transport.Open(t.Context(), cfg.TransportURL, transport.WithLogger(logger))
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			if _, err := notify.NewNotifier(tr, "svc.host1", cfg.NotifierOptions()...); err != nil {
				t.Fatal(err)
			}
			warned := strings.Count(logs.String(), "notifications are dropped")
			if want := map[bool]int{true: 1, false: 0}[tt.wantWarn]; warned != want {
				t.Errorf("%d warnings, want %d; logs:\n%s", warned, want, logs.String())
			}
			if tt.wantWarn && !strings.Contains(logs.String(), "driver = messagingv2") {
				t.Errorf("the warning does not say how to send notifications:\n%s", logs.String())
			}
		})
	}
}
