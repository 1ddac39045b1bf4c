package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-mq/switchyard/internal/rawoslo"
	"github.com/switchyard-mq/switchyard/rpc"
)

// rabbitOsloClient is rabbit://'s second raw baseline, for the RPC cases
// only: the calls rabbitClient makes, as a program written directly on
// amqp091-go must make them to talk with oslo.messaging's peers, keeping
// the promises Switchyard's calls keep. Its requests and replies carry
// oslo's envelope (package rawoslo: encoding/json, fresh _unique_ids),
// go through a topic exchange (requests) and the default exchange
// (replies), persistent, mandatory and confirmed whatever the confirms
// option says, as the rabbit driver's mandatory publishes are; a return
// fails the run. The server acks each request as it starts on it and
// drops a repeated _unique_id; the client matches replies by the _msg_id
// in their body (a fresh uuid per call), as replies from oslo's servers
// carry no correlation id. It is the floor for Switchyard's calls: the
// plain raw side sends the same bytes every time and matches replies by
// correlation id, which no oslo peer could answer.
type rabbitOsloClient struct {
	raw *rabbitClient // its broker, virtual host and credentials
}

// rawOsloName is the raw-oslo-client side's name in reports.
const rawOsloName = "raw-oslo-client"

func (rabbitOsloClient) name() string { return rawOsloName }

// rpcOnly marks the side as one that runs the RPC cases only.
func (rabbitOsloClient) rpcOnly() {}

func (rabbitOsloClient) publish(context.Context, Limits, bool, *meter) error {
	return errors.New(rawOsloName + " runs the RPC cases only")
}

func (r rabbitOsloClient) rpc(ctx context.Context, lim Limits, callers int, m *meter) (err error) {
	exchange := uniqueName("raw-oslo")
	q, closeRPC, err := r.raw.openRPC("raw-oslo-rpc", "raw-oslo-reply", exchange)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, closeRPC()) }()
	calls := newRawCalls(ctx, callers)
	calls.newID = rawoslo.NewID // each call's _msg_id, as oslo's clients make them
	defer calls.stop()
	reply, err := mandatoryPublisher(q.serverConn, "", calls)
	if err != nil {
		return err
	}
	request, err := mandatoryPublisher(q.clientConn, exchange, calls)
	if err != nil {
		return err
	}
	server := &rawoslo.Server[json.RawMessage, json.RawMessage]{
		Method: "echo", Handle: func(args json.RawMessage) json.RawMessage { return args },
	}
	q.serve(calls, callers, reply, func(d amqp.Delivery) (string, amqp.Publishing, bool) {
		body, replyTo, ok := server.Answer(d.Body) // not ok: a repeat, or not a request for echo
		return replyTo, amqp.Publishing{Body: body}, ok
	}, func(d amqp.Delivery) (string, error) {
		var answer rawoslo.Reply[json.RawMessage]
		if err := rawoslo.Unwrap(d.Body, &answer); err != nil {
			return "", fmt.Errorf("malformed reply: %w", err)
		}
		return answer.MsgID, nil
	})

	args := echoArgs(lim.Size)
	// The rpc client's default call timeout, as Switchyard's requests
	// carry it.
	expiration := strconv.FormatInt(rpc.DefaultTimeout.Milliseconds(), 10)
	return measureCalls(ctx, lim, callers, m, func(ctx context.Context, caller int) error {
		return calls.call(ctx, caller, func(msgID string) error {
			body, err := rawoslo.Wrap(rawoslo.Request[json.RawMessage]{
				Method: "echo", Args: args, MsgID: msgID, ReplyQ: q.replyQ, UniqueID: rawoslo.NewID(),
			})
			if err != nil {
				return err
			}
			return request(ctx, q.requestQ, amqp.Publishing{Body: body, Expiration: expiration})
		})
	})
}

// mandatoryPublisher returns the publish function of a new channel of
// conn in confirm mode: mandatory, persistent JSON to exchange, waiting
// for each confirm. A message returned as unroutable fails calls.
func mandatoryPublisher(conn *amqp.Connection, exchange string, calls *rawCalls) (func(ctx context.Context, key string, p amqp.Publishing) error, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		return nil, err
	}
	returns := ch.NotifyReturn(make(chan amqp.Return, 1))
	calls.run("returns", func(ctx context.Context) error {
		select {
		case r, ok := <-returns:
			if !ok {
				return nil // the channel closed
			}
			return fmt.Errorf("a message to exchange %q, key %q was returned: %s", r.Exchange, r.RoutingKey, r.ReplyText)
		case <-ctx.Done():
			return nil
		}
	})
	publish := confirmedPublish(ch, exchange, true)
	return func(ctx context.Context, key string, p amqp.Publishing) error {
		p.ContentType, p.ContentEncoding, p.DeliveryMode = "application/json", "utf-8", amqp.Persistent
		return publish(ctx, key, p)
	}, nil
}

// declareTopicExchange declares a topic exchange on a channel of conn and
// returns the function that deletes it.
func declareTopicExchange(conn *amqp.Connection, name string) (deleteExchange func() error, err error) {
	if err := onChannel(conn, "declare exchange "+name, func(ch *amqp.Channel) error {
		return ch.ExchangeDeclare(name, amqp.ExchangeTopic, false, false, false, false, nil)
	}); err != nil {
		return nil, err
	}
	return func() error {
		return onChannel(conn, "delete exchange "+name, func(ch *amqp.Channel) error {
			return ch.ExchangeDelete(name, false, false)
		})
	}, nil
}

// bindQueue binds queue to exchange with its own name as the key, as oslo
// binds a topic's queue.
func bindQueue(conn *amqp.Connection, queue, exchange string) error {
	return onChannel(conn, "bind queue "+queue+" to exchange "+exchange, func(ch *amqp.Channel) error {
		return ch.QueueBind(queue, queue, exchange, false, nil)
	})
}
