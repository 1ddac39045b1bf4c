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
	TransientQuorumQueue = option.Bool(option.Spec{Name: "rabbit_transient_quorum_queue", Default: "false",
		Group: option.GroupRabbit, Doc: "declare reply and fanout queues as quorum queues (durable, expiring)"})
	StreamFanout = option.Bool(option.Spec{Name: "rabbit_stream_fanout", Default: "false", Group: option.GroupRabbit,
		Doc: "fan casts out through one stream queue per topic, which every server reads (needs rabbit_transient_quorum_queue and rabbit_qos_prefetch_count)"})
	UseQueueManager = option.Bool(option.Spec{Name: "use_queue_manager", Default: "false", Group: option.GroupRabbit,
		Doc: "name reply and fanout queues after hostname and processname, the same again after a restart, instead of at random"})
	Hostname = option.String(option.Spec{Name: "hostname", Group: option.GroupRabbit,
		Doc: "the `host` name in queue manager names (default: the machine's)"})
	ProcessName = option.String(option.Spec{Name: "processname", Group: option.GroupRabbit,
		Doc: "the `process` name in queue manager names (default: the program's file name)"})
	QuorumDeliveryLimit = option.Int(option.Spec{Name: "rabbit_quorum_delivery_limit", Max: math.MaxInt32,
		Group: option.GroupRabbit, Doc: "x-delivery-limit of quorum queues, a `count` (default 0, none)"})
	QuorumMaxMemoryLength = option.Int(option.Spec{Name: "rabbit_quorum_max_memory_length", Max: math.MaxInt32,
		Group: option.GroupRabbit, Doc: "x-max-in-memory-length of quorum queues, a `count` (default 0, none)"})
	QuorumMaxMemoryBytes = option.Int(option.Spec{Name: "rabbit_quorum_max_memory_bytes", Max: math.MaxInt32,
		Group: option.GroupRabbit, Doc: "x-max-in-memory-bytes of quorum queues, in `bytes` (default 0, none)"})
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
	SSLEnforceHostnameVerification = option.Bool(option.Spec{Name: "ssl_enforce_hostname_verification", Default: "true", Group: option.GroupRabbit,
		Doc: "check the broker's host name against its certificate; false still checks the certificate's chain (default true)"})
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
	ignored("heartbeat_in_pthread", option.KindBool, "oslo.messaging 18 removed it; it was about Python's threads"),
	ignored("rpc_conn_pool_size", option.KindInt, "a transport has one connection", option.Alias{Group: option.GroupDefault, Name: "rpc_conn_pool_size"}),
	ignored("conn_pool_min_size", option.KindInt, "a transport has one connection"),
	ignored("conn_pool_ttl", option.KindInt, "a transport has one connection"),
	ignored("kombu_reconnect_delay", option.KindDuration, "the driver reconnects with the rabbit_retry_* backoff",
		option.Alias{Group: option.GroupDefault, Name: "kombu_reconnect_delay"}),
	ignored("kombu_reconnect_splay", option.KindDuration, "it times oslo's reconnection after a consumer cancel; the driver consumes again after a cancel with its own jittered rabbit_retry_* backoff"),
	only("kombu_compression", option.KindString, "Switchyard sends message bodies uncompressed (and reads compressed ones)", nil),
	only("kombu_failover_strategy", option.KindString, "the driver tries the URL's hosts round-robin", []string{"round-robin"}),
	only("kombu_missing_consumer_retry_timeout", option.KindInt, "an RPC server retries a reply to a missing queue for 60 seconds", []string{"60"},
		option.Alias{Group: option.GroupRabbit, Name: "kombu_reconnect_timeout"}),
	only("rabbit_login_method", option.KindString, "the driver logs in with PLAIN, which RabbitMQ accepts wherever AMQPLAIN is", []string{"AMQPLAIN", "PLAIN"},
		option.Alias{Group: option.GroupDefault, Name: "rabbit_login_method"}),
	ignored("rabbit_quroum_max_memory_length", option.KindInt, "oslo.messaging 18 removed this misspelt name; use rabbit_quorum_max_memory_length"),
	ignored("rabbit_quroum_max_memory_bytes", option.KindInt, "oslo.messaging 18 removed this misspelt name; use rabbit_quorum_max_memory_bytes"),
	only("direct_mandatory_flag", option.KindBool, "replies are always published mandatory", []string{"true"}),
	only("enable_cancel_on_failover", option.KindBool, "consumers do not ask for x-cancel-on-ha-failover", []string{"false"}),
	only("ssl_version", option.KindString, "Go negotiates TLS 1.2 or later", nil,
		option.Alias{Group: option.GroupRabbit, Name: "kombu_ssl_version"}),
	only("ssl_enforce_fips_mode", option.KindBool, "there is no FIPS mode switch", []string{"false"}),
}

// Options are every option a rabbit:// URL takes: the portable ones, the
// driver's, the TLS files and oslo's that have no effect here.
var Options = option.NewSet(append(append(append(option.Portable(),
	Heartbeat, Prefetch, Confirms, SSL, SSLEnforceHostnameVerification), tlsfiles.Options()...), append([]option.Option{
	QuorumQueue, TransientQuorumQueue, StreamFanout, UseQueueManager, Hostname, ProcessName,
	HAQueues, QuorumDeliveryLimit, QuorumMaxMemoryLength, QuorumMaxMemoryBytes,
	RetryInterval, RetryBackoff, IntervalMax}, osloOnly...)...)...)

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
