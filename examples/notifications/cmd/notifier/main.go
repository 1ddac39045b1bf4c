// Command notifier publishes one notification.
//
//	go run ./examples/notifications/cmd/notifier -url rabbit://guest:guest@127.0.0.1:5672/ \
//	    -priority info -event compute.instance.create.end '{"id": 42}'
//
// The payload is JSON (default {}). With -driver messaging the bare 1.0
// format is sent, for old consumers.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	_ "github.com/switchyard-mq/switchyard/drivers/all"
	"github.com/switchyard-mq/switchyard/notify"
	"github.com/switchyard-mq/switchyard/transport"
)

func main() {
	url := flag.String("url", "memory://", "transport URL")
	publisher := flag.String("publisher", "example.host1", "publisher id")
	priority := flag.String("priority", "info", "audit, debug, info, warn, error, critical or sample")
	event := flag.String("event", "example.event", "event type")
	topic := flag.String("topic", notify.DefaultTopic, "notification topic")
	driver := flag.String("driver", string(notify.MessagingV2), "messagingv2, messaging, log or noop")
	flag.Parse()
	payload := json.RawMessage("{}")
	if flag.NArg() > 0 {
		payload = json.RawMessage(flag.Arg(0))
	}
	if err := run(*url, *publisher, notify.Priority(*priority), *event, *topic, notify.Driver(*driver), payload); err != nil {
		fmt.Fprintln(os.Stderr, "notifier:", err)
		os.Exit(1)
	}
}

func run(url, publisher string, p notify.Priority, event, topic string, driver notify.Driver, payload json.RawMessage) error {
	if !json.Valid(payload) {
		return fmt.Errorf("payload %q is not JSON", payload)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tr, err := transport.Open(ctx, url)
	if err != nil {
		return err
	}
	defer tr.Close()
	n, err := notify.NewNotifier(tr, publisher, notify.WithTopics(topic), notify.WithDriver(driver))
	if err != nil {
		return err
	}
	return n.Notify(ctx, p, event, payload)
}
