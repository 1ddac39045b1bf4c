package option

import (
	"fmt"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

// The oslo.config sections Switchyard reads options from.
const (
	// GroupDefault is oslo.config's [DEFAULT] section.
	GroupDefault = "DEFAULT"
	// GroupRabbit is [oslo_messaging_rabbit]: the rabbit driver's options,
	// and the topology options oslo.messaging keeps there.
	GroupRabbit = "oslo_messaging_rabbit"
	// GroupNotifications is [oslo_messaging_notifications].
	GroupNotifications = "oslo_messaging_notifications"
)

// The portable options: every scheme accepts them in its URL, and the rpc
// and notify layers read them to name and flag what they declare, as
// oslo.messaging's rabbit driver does.
var (
	// ControlExchange is the exchange of RPC targets that name none, and of
	// notifications.
	ControlExchange = String(Spec{Name: "control_exchange", Default: "openstack", Group: GroupDefault, Check: CheckName,
		Doc: "the `exchange` of RPC targets that name none, and of notifications (default openstack)"})
	// DurableQueues flags the control exchange and the shared (topic and
	// notification) queues durable.
	DurableQueues = Bool(Spec{Name: "amqp_durable_queues", Default: "false", Group: GroupRabbit,
		Doc: "declare the control exchange and the topic and notification queues durable (where the backend has durability)"})
	// AutoDelete flags the control exchange and the shared queues
	// auto-delete.
	AutoDelete = Bool(Spec{Name: "amqp_auto_delete", Default: "false", Group: GroupRabbit,
		Aliases: []Alias{{GroupDefault, "amqp_auto_delete"}},
		Doc:     "declare the control exchange and the topic and notification queues auto-delete"})
	// TransientQueuesTTL is how long an unused reply or fanout queue lives.
	TransientQueuesTTL = Duration(Spec{Name: "rabbit_transient_queues_ttl", Default: "1800", Group: GroupRabbit,
		Doc: "`seconds` an unused reply or fanout queue lives, and a fanout stream keeps its casts (default 1800; 0: for ever)"})
)

// CheckName is the Check of an option that names an exchange or a topic,
// as an RPC target's fields are named: 1 to 255 bytes of UTF-8 without
// spaces or control characters.
func CheckName(v string) error {
	if v == "" || driver.CheckName(v, false) != nil {
		return fmt.Errorf("%q is not a valid name: at most 255 bytes, without spaces or control characters (oslo files have no trailing comments)", v)
	}
	return nil
}

// Portable returns the portable options, for a driver's Set.
func Portable() []Option {
	return []Option{ControlExchange, DurableQueues, AutoDelete, TransientQueuesTTL}
}
