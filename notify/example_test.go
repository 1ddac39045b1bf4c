package notify_test

import (
	"context"
	"fmt"
	"log"

	_ "github.com/switchyard-mq/switchyard/drivers/memory"
	"github.com/switchyard-mq/switchyard/notify"
	"github.com/switchyard-mq/switchyard/transport"
)

func Example() {
	ctx := context.Background()
	tr, err := transport.Open(ctx, "memory://example-notify")
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()

	received := make(chan *notify.Notification, 1)
	listener, err := notify.NewListener(tr, []transport.Target{{Topic: notify.DefaultTopic}}, []notify.Endpoint{{
		Priorities: []notify.Priority{notify.Info},
		Handle: func(ctx context.Context, n *notify.Notification) error {
			received <- n
			return nil
		},
	}})
	if err != nil {
		log.Fatal(err)
	}
	if err := listener.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer listener.Stop(ctx)

	notifier, err := notify.NewNotifier(tr, "compute.host1")
	if err != nil {
		log.Fatal(err)
	}
	if err := notifier.Info(ctx, "compute.instance.create.end", map[string]string{"id": "42"}); err != nil {
		log.Fatal(err)
	}
	n := <-received
	fmt.Println(n.Priority, n.PublisherID, n.EventType, string(n.Payload))
	// Output: info compute.host1 compute.instance.create.end {"id":"42"}
}
