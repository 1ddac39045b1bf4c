package messaging

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/switchyard-mq/switchyard/transport"
)

func TestExplain(t *testing.T) {
	for _, tt := range []struct {
		name     string
		err      error
		want     error
		mentions []string // "" when err comes back as it is
	}{
		{"RabbitMQ 4 denies a transient queue",
			fmt.Errorf("%w: INTERNAL_ERROR - Feature `transient_nonexcl_queues` is deprecated. (AMQP reply 541)", transport.ErrUnsupported),
			transport.ErrUnsupported, []string{"rabbit_quorum_queue=true", "rabbit_transient_quorum_queue=true", "amqp_durable_queues=true"}},
		{"a queue of another type",
			fmt.Errorf("%w: PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'compute' in vhost '/': received none but current is the value 'quorum' (AMQP reply 406)", transport.ErrPrecondition),
			transport.ErrPrecondition, []string{`queue "compute"`, "rabbit_quorum_queue", "rabbit_transient_quorum_queue"}},
		{"an exchange of another durability",
			fmt.Errorf("%w: PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'openstack' (AMQP reply 406)", transport.ErrPrecondition),
			transport.ErrPrecondition, []string{"amqp_durable_queues"}},
		{"a notification queue of other bounds",
			fmt.Errorf("%w: PRECONDITION_FAILED - inequivalent arg 'x-max-length' (AMQP reply 406)", transport.ErrPrecondition),
			transport.ErrPrecondition, []string{"queue_max_length"}},
		{"an argument no option sets",
			fmt.Errorf("%w: PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-exchange' (AMQP reply 406)", transport.ErrPrecondition),
			transport.ErrPrecondition, nil},
		{"anything else", fmt.Errorf("%w: connection lost", transport.ErrClosed), transport.ErrClosed, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			kind, name := "queue", "compute"
			if strings.Contains(tt.err.Error(), "exchange") {
				kind, name = "exchange", "openstack"
			}
			got := explain(tt.err, kind, name)
			if !errors.Is(got, tt.want) {
				t.Fatalf("explain: %v, want it to wrap %v", got, tt.want)
			}
			if tt.mentions == nil && got != tt.err {
				t.Errorf("explain changed an error it has nothing to add to: %v", got)
			}
			for _, m := range tt.mentions {
				if !strings.Contains(got.Error(), m) {
					t.Errorf("%q does not mention %s", got, m)
				}
			}
		})
	}
}
