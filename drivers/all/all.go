// Package all registers every Switchyard driver. Import it for its side
// effect when the backend is chosen at run time, by URL:
//
//	import _ "github.com/switchyard-mq/switchyard/drivers/all"
package all

import (
	_ "github.com/switchyard-mq/switchyard/drivers/amqp1"  // amqp://, amqps://
	_ "github.com/switchyard-mq/switchyard/drivers/memory" // memory://
	_ "github.com/switchyard-mq/switchyard/drivers/rabbit" // rabbit://, rabbits://
	_ "github.com/switchyard-mq/switchyard/drivers/zmq"    // zmq://
)
