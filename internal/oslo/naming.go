package oslo

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"time"
)

// Wire defaults of oslo.messaging 14 (impl_rabbit.py's options).
const (
	// DefaultControlExchange is [DEFAULT] control_exchange, the exchange of
	// RPC and notifications when the target names none. OpenStack services
	// normally set their own (e.g. "nova").
	DefaultControlExchange = "openstack"

	// DefaultNotificationTopic is [oslo_messaging_notifications] topics.
	DefaultNotificationTopic = "notifications"

	// DefaultTransientQueueTTL is rabbit_transient_queues_ttl, the idle
	// lifetime of reply and fanout queues, declared as x-expires in
	// milliseconds (1800000).
	DefaultTransientQueueTTL = 1800 * time.Second

	// DefaultCallTimeout is [DEFAULT] rpc_response_timeout, how long a call
	// waits for its reply and the expiration of its request.
	DefaultCallTimeout = 60 * time.Second

	// ContentType is the content type of every message; kombu refuses any
	// other, even "application/json; charset=utf-8".
	ContentType = "application/json"

	// ContentEncoding is the content encoding of every message.
	ContentEncoding = "utf-8"
)

// TopicQueue returns the queue, and the routing key, of a call or cast to
// every server of topic: the topic itself.
func TopicQueue(topic string) string { return topic }

// ServerQueue returns the queue, and the routing key, of a call or cast to
// one server of topic: "topic.server".
func ServerQueue(topic, server string) string { return topic + "." + server }

// FanoutExchange returns the fanout exchange of topic, "topic_fanout". It is
// not scoped by the control exchange: services sharing a topic share it.
func FanoutExchange(topic string) string { return topic + "_fanout" }

// FanoutQueue returns a new name for a server's own queue on the fanout
// exchange of topic: "topic_fanout_" and 32 random hex digits.
func FanoutQueue(topic string) string { return topic + "_fanout_" + NewID() }

// ReplyQueue returns a new name for a transport's reply queue: "reply_" and
// 32 random hex digits.
func ReplyQueue() string { return "reply_" + NewID() }

// NotificationKey returns the routing key of notifications on topic with
// priority p, "topic.p" with p lower-case (e.g. "notifications.info"). It is
// also the name of the queue listeners without a pool share.
func NotificationKey(topic string, p Priority) string {
	return topic + "." + asciiLower(string(p))
}

// CallExpiration returns the expiration property of a call's request, the
// timeout in whole milliseconds as a decimal string ("60000"), or "" (no
// expiration) when timeout is not positive.
func CallExpiration(timeout time.Duration) string {
	if timeout <= 0 {
		return ""
	}
	return strconv.FormatInt(timeout.Milliseconds(), 10)
}

// NewID returns a new random uuid4 as 32 lower-case hex digits, the form of
// _msg_id, _unique_id and queue-name suffixes.
func NewID() string {
	u := newUUID()
	var out [32]byte
	hex.Encode(out[:], u[:])
	return string(out[:])
}

// NewDashedID returns a new random uuid4 in its dashed form,
// "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", the form of a notification's
// message_id.
func NewDashedID() string {
	u := newUUID()
	var out [36]byte
	hex.Encode(out[0:8], u[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], u[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], u[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], u[8:10])
	out[23] = '-'
	hex.Encode(out[24:], u[10:])
	return string(out[:])
}

// newUUID returns 16 random bytes marked as a version 4, RFC 4122 uuid.
// They come from the runtime's generator (ChaCha8, seeded by the operating
// system, per thread) rather than crypto/rand: an id must be unique, not
// secret (every peer on the broker reads it in the message), and a system
// call for each of a call's three ids cost more than its envelope's codec.
func newUUID() [16]byte {
	var u [16]byte
	binary.LittleEndian.PutUint64(u[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(u[8:], rand.Uint64())
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

// IsNotificationContextKey reports whether a 14.x notifier sends the context
// entry k: user_id, project_id, domain_id, user_domain_id, project_domain_id,
// is_admin, request_id, roles, user_name, project_name, domain_name,
// user_domain_name, project_domain_name, service_user_id,
// service_user_domain_id, service_user_domain_name, service_project_id,
// service_project_name, service_project_domain_id,
// service_project_domain_name, service_roles, global_request_id,
// system_scope, user, domain, user_domain and project_domain. There is no
// service_user_name. The list is oslo's
// notifier._sanitize_context.
func IsNotificationContextKey(k string) bool {
	switch k {
	case "user_id", "project_id", "domain_id", "user_domain_id",
		"project_domain_id", "is_admin", "request_id", "roles",
		"user_name", "project_name", "domain_name", "user_domain_name",
		"project_domain_name",
		"service_user_id", "service_user_domain_id", "service_user_domain_name",
		"service_project_id", "service_project_name",
		"service_project_domain_id", "service_project_domain_name",
		"service_roles", "global_request_id", "system_scope",
		"user", "domain", "user_domain", "project_domain":
		return true
	}
	return false
}

// FilterNotificationContext returns a new map with the entries of ctx that a
// 14.x notifier sends (see IsNotificationContextKey), dropping auth_token and
// anything else. It returns nil when none is left.
func FilterNotificationContext(ctx map[string]json.RawMessage) map[string]json.RawMessage {
	var out map[string]json.RawMessage
	for k, v := range ctx {
		if IsNotificationContextKey(k) {
			if out == nil {
				out = make(map[string]json.RawMessage, len(ctx))
			}
			out[k] = v
		}
	}
	return out
}
