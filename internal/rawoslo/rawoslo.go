// Package rawoslo is oslo.messaging's RPC messages as a Go program written
// directly on amqp091-go would handle them, with encoding/json and nothing
// of Switchyard: the codec of the hand-written clients and servers that
// Switchyard's RPC benchmarks put beside it as the floor with Switchyard's
// promises.
//
// A raw loop that sends the same bytes every time and matches replies by
// AMQP correlation id is cheaper, but no oslo peer answers it: oslo's
// servers read the request's envelope, drop a repeated _unique_id, reply
// to its _reply_q and set no correlation id, so that a client finds the
// call a reply answers by the _msg_id in its body. A program that talks
// with oslo peers does that work on every call, and so does this one, as
// leanly as encoding/json allows: one struct per message, each decoded
// once.
package rawoslo

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
)

// Envelope is oslo's 2.0 envelope: the message as a JSON string.
type Envelope struct {
	Version string `json:"oslo.version"`
	Message string `json:"oslo.message"`
}

// Request is an RPC request whose arguments are an A.
type Request[A any] struct {
	Method   string   `json:"method"`
	Args     A        `json:"args"`
	MsgID    string   `json:"_msg_id"`
	ReplyQ   string   `json:"_reply_q"`
	Timeout  *float64 `json:"_timeout"`
	UniqueID string   `json:"_unique_id"`
}

// Reply is an RPC reply whose result is an R.
type Reply[R any] struct {
	Result   *R      `json:"result"`
	Failure  *string `json:"failure"`
	Ending   bool    `json:"ending"`
	MsgID    string  `json:"_msg_id"`
	UniqueID string  `json:"_unique_id"`
}

// NewID returns a random uuid4 as 32 hex digits, the form of oslo's ids.
func NewID() string {
	var u [16]byte
	binary.LittleEndian.PutUint64(u[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(u[8:], rand.Uint64())
	u[6], u[8] = u[6]&0x0f|0x40, u[8]&0x3f|0x80
	return hex.EncodeToString(u[:])
}

// Wrap encodes m and puts it in an envelope.
func Wrap(m any) ([]byte, error) {
	inner, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return json.Marshal(Envelope{Version: "2.0", Message: string(inner)})
}

// Unwrap decodes the message in the envelope body into m.
func Unwrap(body []byte, m any) error {
	var env Envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return err
	}
	if env.Version != "2.0" {
		return fmt.Errorf("rawoslo: envelope version %q, want 2.0", env.Version)
	}
	return json.Unmarshal([]byte(env.Message), m)
}

// Server answers the requests for one method, Method, whose arguments are
// an A and whose result Handle returns, dropping a request whose
// _unique_id came within the last DuplicateWindow requests, as oslo's
// servers and Switchyard's do. It is safe for concurrent use: only the
// duplicate check takes its lock, decoding, Handle and encoding do not.
type Server[A, R any] struct {
	Method string
	Handle func(A) R

	mu            sync.Mutex
	recent, older map[string]bool
}

// DuplicateWindow is how many requests' _unique_ids a Server keeps (at
// least; up to twice as many).
const DuplicateWindow = 4096

// Answer returns the reply to the request in body and the queue it goes
// to; false for a repeated or malformed request, or another method's,
// which gets no reply.
func (s *Server[A, R]) Answer(body []byte) (reply []byte, replyQ string, ok bool) {
	var req Request[A]
	if err := Unwrap(body, &req); err != nil || req.Method != s.Method || req.ReplyQ == "" {
		return nil, "", false
	}
	if !s.admit(req.UniqueID) {
		return nil, "", false
	}
	result := s.Handle(req.Args)
	reply, err := Wrap(Reply[R]{Result: &result, Ending: true, MsgID: req.MsgID, UniqueID: NewID()})
	return reply, req.ReplyQ, err == nil
}

// admit reports whether id is new, remembering it.
func (s *Server[A, R]) admit(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recent[id] || s.older[id] {
		return false
	}
	if s.recent == nil || len(s.recent) == DuplicateWindow {
		s.older, s.recent = s.recent, make(map[string]bool, DuplicateWindow)
	}
	s.recent[id] = true
	return true
}
