package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	_ "github.com/switchyard-mq/switchyard/drivers/rabbit"
	"github.com/switchyard-mq/switchyard/internal/brokertest"
)

// TestNotifyRabbit runs the notify case on RabbitMQ through Switchyard
// and the raw amqp091-go client, with and without confirms: every
// notification published is handled, and nothing of the run is left on
// the broker.
func TestNotifyRabbit(t *testing.T) {
	vh := brokertest.NewRabbitVHost(t)
	c, err := SelectCases("notify")
	if err != nil {
		t.Fatal(err)
	}
	lim := Limits{Messages: 300, Duration: 20 * time.Second, Size: 100, Inflight: 4}
	for _, query := range []string{"", "?confirms=false"} {
		b := newBackend(t, vh.URL+query)
		sides := b.sidesFor(c[0])
		if len(sides) != 2 {
			t.Fatalf("%s: %d sides run the notify case, want Switchyard's and the raw client's", vh.URL+query, len(sides))
		}
		for _, cl := range sides {
			t.Run(cl.name()+query, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
				defer cancel()
				var m meter
				if err := runCase(ctx, c[0], cl, lim, &m); err != nil {
					t.Fatal(err)
				}
				if got := m.ops.Load(); got != int64(lim.Messages) {
					t.Errorf("%d notifications handled, want %d", got, lim.Messages)
				}
			})
		}
	}
	for _, what := range []string{"queues", "exchanges"} {
		if left := brokertest.RabbitCtl(t, "list_"+what, "-p", vh.Name, "name"); strings.Contains(left, "switchyard-bench") {
			t.Errorf("the notify case left %s\n%s", what, left)
		}
	}
}
