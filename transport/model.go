package transport

import "github.com/switchyard-mq/switchyard/transport/driver"

// The portable model's data types. They are defined in package driver,
// which the backends implement, and used here under the same names; see
// each type's documentation there.
type (
	// Exchange describes an exchange to declare.
	Exchange = driver.Exchange
	// ExchangeKind is direct, fanout or topic.
	ExchangeKind = driver.ExchangeKind
	// Queue describes a queue to declare.
	Queue = driver.Queue
	// Binding routes messages from an exchange to a queue.
	Binding = driver.Binding
	// Message is what is published and what a delivery carries.
	Message = driver.Message
	// Headers are a message's application headers.
	Headers = driver.Headers
	// ConsumeOptions tune a consumer: prefetch, auto-ack, exclusive.
	ConsumeOptions = driver.ConsumeOptions
	// Capability is one optional behaviour of the model.
	Capability = driver.Capability
	// Capabilities is the set of behaviours a backend provides.
	Capabilities = driver.Capabilities
	// Config is a parsed transport URL.
	Config = driver.Config
	// Host is one broker address of a URL.
	Host = driver.Host
)

// The exchange kinds.
const (
	// Direct routes a message to the queues bound with its exact key.
	Direct = driver.Direct
	// Fanout routes a message to every bound queue.
	Fanout = driver.Fanout
	// Topic routes by pattern: `*` is one dot-separated word, `#` any number.
	Topic = driver.Topic
)
