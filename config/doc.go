// Package config reads the configuration of a Switchyard service the way
// oslo.messaging reads an OpenStack service's: the transport URL, the
// control exchange, the RPC timeout, the [oslo_messaging_rabbit] options
// and the [oslo_messaging_notifications] options, so that a Go service
// reads the very file its Python neighbours (Nova, Neutron) use.
//
//	fs := flag.NewFlagSet("myservice", flag.ExitOnError)
//	flags := config.RegisterFlags(fs)
//	fs.Parse(os.Args[1:])
//	cfg, err := config.Load(config.Sources{Env: os.LookupEnv, Flags: flags})
//	tr, err := cfg.Open(ctx)
//	client, err := rpc.NewClient(tr, cfg.RPCClientOptions()...)
//	notifier, err := notify.NewNotifier(tr, "myservice.host1", cfg.NotifierOptions()...)
//
// # Sources and precedence
//
// Each option can be set in four places; a higher one overrides a lower
// one, option by option:
//
//  1. a command-line flag (RegisterFlags): -transport-url,
//     -control-exchange, -rpc-response-timeout, -<rabbit option with
//     dashes>, -notifications-<option>;
//  2. an environment variable: SWITCHYARD_URL for the transport URL,
//     SWITCHYARD_<OPTION> for the others (SWITCHYARD_CONTROL_EXCHANGE,
//     SWITCHYARD_RPC_RESPONSE_TIMEOUT, SWITCHYARD_AMQP_DURABLE_QUEUES),
//     SWITCHYARD_NOTIFICATIONS_<OPTION> for notifications;
//  3. oslo.config files (-config-file, else SWITCHYARD_CONFIG_FILE, else
//     Sources.Files), a later file overriding an earlier one;
//  4. the defaults (Sources.Defaults, else Default()).
//
// A transport URL's query options ("rabbit://h/?heartbeat_timeout_threshold=30")
// count as options set by the source that set the URL, and within one
// source they override that source's own option, as oslo.messaging lets the
// URL override [oslo_messaging_rabbit]. The rabbit driver's own options are
// read so only from a rabbit:// or rabbits:// URL; in another driver's URL
// they stay in the query for that driver (amqps:// takes ssl_ca_file,
// ssl_cert_file and ssl_key_file too). An empty value leaves an option
// unset.
//
// # The oslo.config file
//
// The file is parsed by oslo.config's rules: "[section]" lines, "key =
// value" (or "key: value"), comments on lines of their own starting with
// '#' or ';' (there are no trailing comments), continuation lines indented
// by a space or tab, "$$" for a literal '$' and "$name" for another value
// of the file. Values are spelled as in a transport URL's query, and read
// by the same rules (package transport/driver/option): booleans are
// true/false, yes/no, on/off or 1/0 in any case; durations are seconds,
// fractions allowed, or Go durations ("90s", "1500ms"); lists are
// comma-separated. Switchyard reads:
//
//	[DEFAULT]
//	transport_url = rabbit://nova:secret@rabbit1:5672,nova:secret@rabbit2:5672/nova
//	control_exchange = nova
//	rpc_response_timeout = 60
//	executor_thread_pool_size = 64
//
//	[oslo_messaging_rabbit]
//	amqp_durable_queues = true        # every scheme: the rpc and notify layers read these three
//	amqp_auto_delete = false
//	rabbit_transient_queues_ttl = 1800
//	heartbeat_timeout_threshold = 60  # the rabbit driver's own, for rabbit:// and rabbits:// only
//	rabbit_qos_prefetch_count = 0
//	rabbit_quorum_queue = false       # quorum topic and notification queues
//	rabbit_transient_quorum_queue = false  # quorum reply and fanout queues
//	rabbit_stream_fanout = false      # one stream per topic for fanout casts
//	use_queue_manager = false         # reply_<hostname>:<processname>:<n> names
//	hostname =
//	processname =
//	rabbit_quorum_delivery_limit = 0
//	rabbit_quorum_max_memory_length = 0
//	rabbit_quorum_max_memory_bytes = 0
//	rabbit_ha_queues = false
//	rabbit_retry_interval = 1
//	rabbit_retry_backoff = 2
//	rabbit_interval_max = 30
//	ssl = false
//	ssl_ca_file = /etc/ssl/certs/ca.pem
//	ssl_cert_file =
//	ssl_key_file =
//	ssl_enforce_hostname_verification = true
//
//	[oslo_messaging_notifications]
//	driver = messagingv2
//	transport_url =
//	topics = notifications
//	retry = -1
//	declare_queues = true             # Switchyard's own three (oslo.messaging ignores them):
//	queue_max_length = 0              # the <topic>.<priority> queues notifiers declare,
//	queue_message_ttl = 0             # unbounded by default as oslo's (notify.QueuePolicy)
//
// (Trailing "#" comments are shown for explanation only; in a real file
// they would be part of the value.) oslo's deprecated names and places are
// read too: [DEFAULT] notification_driver, notification_topics and
// notification_transport_url, rabbit_use_ssl, kombu_ssl_ca_certs and the
// like.
//
// The [oslo_messaging_rabbit] options, with their kinds, bounds,
// deprecated names and effects, are the ones the rabbit driver declares
// for its URLs (and the portable ones every driver takes), not a table of
// this package's: a value a rabbit:// URL accepts, a file, a flag and an
// environment variable accept alike.
//
// Sections Switchyard does not own ([database], [keystone_authtoken],
// [api_database], ... a Nova file has dozens) are ignored, and so are the
// [DEFAULT] options it does not read. In the sections it owns,
// [oslo_messaging_rabbit] and [oslo_messaging_notifications], every
// option is checked: a misspelled one is an error naming the file and
// line ("nova.conf:42: [oslo_messaging_rabbit] rabbit_qos_prefetch_cout:
// unknown option (did you mean rabbit_qos_prefetch_count?)"), and so is a
// malformed value. An oslo option Switchyard does not implement is
// accepted only with the value that describes what Switchyard does (for
// example kombu_failover_strategy = round-robin), and is otherwise an error
// saying it is not supported by Switchyard (kombu_compression = gzip), so
// a service never runs with a setting silently dropped. A few options tune
// only the Python implementation (rpc_conn_pool_size, heartbeat_in_pthread,
// heartbeat_rate, kombu_reconnect_delay); their values are checked and
// have no effect. Errors are *OptionError values matching
// transport.ErrInvalid (and transport.ErrUnsupported for options not
// implemented).
//
// # Secrets
//
// Passwords in transport URLs never appear in errors, in String, GoString
// or LogValue forms, nor in flag defaults.
package config
