package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/switchyard-mq/switchyard/config"
	"github.com/switchyard-mq/switchyard/notify"
	"github.com/switchyard-mq/switchyard/rpc"
)

// notifyOptions are notify's flags.
type notifyOptions struct {
	backend     backendFlags
	priority    string
	publisherID string
	topics      string
	driver      string
	context     string
}

func notifyCommand() command {
	return command{
		name:    "notify",
		summary: "send an oslo notification",
		args:    "EVENT_TYPE [PAYLOAD]",
		doc: `Sends a notification of EVENT_TYPE with PAYLOAD (any JSON value, default {})
at -priority to the control exchange, one message per topic, as an
oslo.messaging notifier does: routing key <topic>.<priority>.

  switchyard notify compute.instance.create.end '{"instance_id": "vm-1"}'
  switchyard notify -priority error -topic notifications,audit backup.failed '"disk full"'`,
		flags: func(fs *flag.FlagSet) func(context.Context, []string, io.Writer) error {
			var o notifyOptions
			o.backend.register(fs)
			host, _ := os.Hostname()
			fs.StringVar(&o.priority, "priority", "info", "`priority`: audit, debug, info, warn, error, critical or sample")
			fs.StringVar(&o.publisherID, "publisher-id", "switchyard."+host, "publisher `id`")
			fs.StringVar(&o.topics, "topic", "", "comma-separated `topics` (default: the configuration's, notifications)")
			fs.StringVar(&o.driver, "driver", "", "notification `driver`: messagingv2 (default), messaging, log or noop")
			fs.StringVar(&o.context, "context", "", "request context, a JSON `object`")
			return func(ctx context.Context, args []string, stdout io.Writer) error {
				if len(args) < 1 || len(args) > 2 {
					return fmt.Errorf("%w: want EVENT_TYPE and optionally PAYLOAD, got %d arguments", errUsage, len(args))
				}
				if !slices.Contains(notify.Priorities(), notify.Priority(o.priority)) {
					return fmt.Errorf("%w: -priority %q: want audit, debug, info, warn, error, critical or sample", errUsage, o.priority)
				}
				payload := json.RawMessage("{}")
				if len(args) == 2 {
					var err error
					if payload, err = jsonArg("PAYLOAD", args[1]); err != nil {
						return err
					}
				}
				rc, err := requestContextArg(o.context)
				if err != nil {
					return err
				}
				return sendNotification(ctx, stdout, o, args[0], payload, rc)
			}
		},
	}
}

func sendNotification(ctx context.Context, stdout io.Writer, o notifyOptions, eventType string, payload json.RawMessage, rc rpc.RequestContext) (err error) {
	// The command exists to send: messagingv2 unless configured otherwise
	// (oslo's default, no driver, would drop the notification).
	defaults := config.Default()
	defaults.Notifications.Driver = notify.MessagingV2
	cfg, err := o.backend.load(&defaults)
	if err != nil {
		return err
	}
	if o.backend.url != "" {
		// -url names the transport for this notification.
		cfg.Notifications.TransportURL = ""
	}
	if o.driver != "" {
		cfg.Notifications.Driver = notify.Driver(o.driver)
	}
	if o.topics != "" {
		cfg.Notifications.Topics = strings.Split(o.topics, ",")
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	cfg = cfg.ForNotifications()
	tr, err := o.backend.open(ctx, cfg)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, tr.Close()) }()
	notifier, err := notify.NewNotifier(tr, o.publisherID, cfg.NotifierOptions()...)
	if err != nil {
		return err
	}
	if rc != nil {
		ctx = rpc.WithRequestContext(ctx, rc)
	}
	if err := notifier.Notify(ctx, notify.Priority(o.priority), eventType, payload); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "notified %s %s from %s to exchange %q, topics %s (%s)\n", o.priority, eventType, o.publisherID,
		cfg.ControlExchange, strings.Join(cfg.Notifications.Topics, ","), cfg.Notifications.Driver)
	return nil
}
