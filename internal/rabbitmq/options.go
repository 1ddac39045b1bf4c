package rabbitmq

import (
	"math"

	"github.com/switchyard-mq/switchyard/internal/tlsfiles"
	"github.com/switchyard-mq/switchyard/transport/driver/option"
)

// The rabbit driver's options, under oslo.messaging's names in
// [oslo_messaging_rabbit]. The driver reads them from its URL's query; the
// configuration loader from that section, its flags and environment.
var (
	Heartbeat = option.Duration(option.Spec{Name: "heartbeat_timeout_threshold", Default: "60", Max: math.MaxUint16,
		Group: option.GroupRabbit, Doc: "heartbeat timeout in `seconds` (default 60; 0 proposes none)"})
	Prefetch = option.Int(option.Spec{Name: "rabbit_qos_prefetch_count", Max: math.MaxUint16,
		Group: option.GroupRabbit, Doc: "`prefetch` of consumers that set none (default 0, no limit)"})
	QuorumQueue = option.Bool(option.Spec{Name: "rabbit_quorum_queue", Default: "false",
		Group: option.GroupRabbit, Doc: "declare topic and notification queues as quorum queues"})
	QuorumDeliveryLimit = option.Int(option.Spec{Name: "rabbit_quorum_delivery_limit", Max: math.MaxInt32,
		Group: option.GroupRabbit, Doc: "x-delivery-limit of quorum queues, a `count` (default 0, none)"})
	HAQueues = option.Bool(option.Spec{Name: "rabbit_ha_queues", Default: "false", Group: option.GroupRabbit,
		Aliases: []option.Alias{{Group: option.GroupDefault, Name: "rabbit_ha_queues"}},
		Doc:     "add x-ha-policy=all to every queue (RabbitMQ before 3.0)"})
	RetryInterval = option.Duration(option.Spec{Name: "rabbit_retry_interval", Default: "1", Max: 86400,
		Group: option.GroupRabbit, Doc: "first reconnection backoff in `seconds` (default 1)"})
	RetryBackoff = option.Duration(option.Spec{Name: "rabbit_retry_backoff", Default: "2", Max: 86400, Group: option.GroupRabbit,
		Aliases: []option.Alias{{Group: option.GroupDefault, Name: "rabbit_retry_backoff"}},
		Doc:     "growth of the reconnection backoff per round in `seconds` (default 2)"})
	IntervalMax = option.Duration(option.Spec{Name: "rabbit_interval_max", Default: "30", Max: 86400,
		Group: option.GroupRabbit, Doc: "longest reconnection backoff in `seconds` (default 30)"})
	SSL = option.Bool(option.Spec{Name: "ssl", Group: option.GroupRabbit,
		Aliases: []option.Alias{{Group: option.GroupRabbit, Name: "rabbit_use_ssl"}},
		Doc:     "connect with TLS (default: as the scheme says, rabbits:// does)"})
	// Confirms is the rabbit driver's own (oslo always confirms); Python
	// services ignore it in a shared file.
	Confirms = option.Bool(option.Spec{Name: "confirms", Default: "true",
		Group: option.GroupRabbit, Doc: "wait for the broker's confirm of every publish (default true)"})
)

// oslo.messaging's rabbit options that tune only its Python
// implementation, or that Switchyard does not implement: accepted, so that
// a Go service reads the file its Python neighbours read, and checked.
var osloOnly = []option.Option{
	ignored("heartbeat_rate", option.KindInt, "amqp091-go checks heartbeats itself, twice per interval"),
	ignored("heartbeat_in_pthread", option.KindBool, "it is about Python's threads"),
	ignored("rpc_conn_pool_size", option.KindInt, "a transport has one connection", option.Alias{Group: option.GroupDefault, Name: "rpc_conn_pool_size"}),
	ignored("conn_pool_min_size", option.KindInt, "a transport has one connection"),
	ignored("conn_pool_ttl", option.KindInt, "a transport has one connection"),
	ignored("kombu_reconnect_delay", option.KindDuration, "the driver reconnects with the rabbit_retry_* backoff",
		option.Alias{Group: option.GroupDefault, Name: "kombu_reconnect_delay"}),
	ignored("kombu_reconnect_splay", option.KindDuration, "the driver jitters its reconnection backoff itself"),
	ignored("hostname", option.KindString, "it names queues only with use_queue_manager"),
	ignored("processname", option.KindString, "it names queues only with use_queue_manager"),
	only("kombu_compression", option.KindString, "Switchyard sends message bodies uncompressed (and reads compressed ones)", nil),
	only("kombu_failover_strategy", option.KindString, "the driver tries the URL's hosts round-robin", []string{"round-robin"}),
	only("kombu_missing_consumer_retry_timeout", option.KindInt, "an RPC server retries a reply to a missing queue for 60 seconds", []string{"60"},
		option.Alias{Group: option.GroupRabbit, Name: "kombu_reconnect_timeout"}),
	only("rabbit_login_method", option.KindString, "the driver logs in with PLAIN, which RabbitMQ accepts wherever AMQPLAIN is", []string{"AMQPLAIN", "PLAIN"},
		option.Alias{Group: option.GroupDefault, Name: "rabbit_login_method"}),
	only("rabbit_quroum_max_memory_length", option.KindInt, "quorum queues get no x-max-in-memory-length", []string{"0"}),
	only("rabbit_quroum_max_memory_bytes", option.KindInt, "quorum queues get no x-max-in-memory-bytes", []string{"0"}),
	only("rabbit_quorum_max_memory_length", option.KindInt, "quorum queues get no x-max-in-memory-length", []string{"0"}),
	only("rabbit_quorum_max_memory_bytes", option.KindInt, "quorum queues get no x-max-in-memory-bytes", []string{"0"}),
	only("direct_mandatory_flag", option.KindBool, "replies are always published mandatory", []string{"true"}),
	only("enable_cancel_on_failover", option.KindBool, "consumers do not ask for x-cancel-on-ha-failover", []string{"false"}),
	only("ssl_version", option.KindString, "Go negotiates TLS 1.2 or later", nil,
		option.Alias{Group: option.GroupRabbit, Name: "kombu_ssl_version"}),
	only("ssl_enforce_hostname_verification", option.KindBool, "Go's TLS always verifies the broker's host name", []string{"true"}),
	only("ssl_enforce_fips_mode", option.KindBool, "there is no FIPS mode switch", []string{"false"}),
	// Options of oslo.messaging releases after 14.0.3, the one Switchyard
	// follows, so that a newer deployment's file is understood.
	only("use_queue_manager", option.KindBool, "reply and fanout queues get random names, as in oslo.messaging 14.0", []string{"false"}),
	only("rabbit_stream_fanout", option.KindBool, "fanout uses a fanout exchange and a queue per server, as in oslo.messaging 14.0", []string{"false"}),
	only("rabbit_transient_quorum_queue", option.KindBool, "reply and fanout queues are classic queues", []string{"false"}),
}

// Options are every option a rabbit:// URL takes: the portable ones, the
// driver's, the TLS files and oslo's that have no effect here.
var Options = option.NewSet(append(append(append(option.Portable(),
	Heartbeat, Prefetch, Confirms, SSL), tlsfiles.Options()...), append([]option.Option{
	QuorumQueue, HAQueues, QuorumDeliveryLimit, RetryInterval, RetryBackoff, IntervalMax}, osloOnly...)...)...)

// ignored declares an oslo option that has no effect in Switchyard.
func ignored(name string, kind option.Kind, why string, aliases ...option.Alias) option.Option {
	return declare(option.Spec{Name: name, Group: option.GroupRabbit, Effect: option.Ignored, Why: why, Aliases: aliases}, kind)
}

// only declares an oslo option that Switchyard accepts only with the values
// that describe what it does (none: no value at all).
func only(name string, kind option.Kind, why string, values []string, aliases ...option.Alias) option.Option {
	return declare(option.Spec{Name: name, Group: option.GroupRabbit, Effect: option.OnlyValues, Only: values, Why: why, Aliases: aliases}, kind)
}

func declare(s option.Spec, kind option.Kind) option.Option {
	switch kind {
	case option.KindBool:
		return option.Bool(s)
	case option.KindInt:
		s.Max = math.MaxInt32
		return option.Int(s)
	case option.KindDuration:
		s.Max = 86400
		return option.Duration(s)
	}
	return option.String(s)
}
