package zmq

import (
	"context"
	"errors"
	"fmt"

	"github.com/switchyard-mq/switchyard/drivers/zmq/internal/matchmaker"
	"github.com/switchyard-mq/switchyard/transport/driver"
)

// Declarations: exchanges, queues and bindings are records in the
// matchmaker. Each change returns once this node's view has it.

// DeclareExchange implements driver.Conn.
func (c *conn) DeclareExchange(ctx context.Context, ex driver.Exchange) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	err := c.mm.DeclareExchange(ctx, matchmaker.Exchange{Name: ex.Name, Kind: string(ex.Kind), Durable: ex.Durable, AutoDelete: ex.AutoDelete})
	if err != nil {
		return err
	}
	return c.registry.sync(ctx)
}

// DeleteExchange implements driver.Conn.
func (c *conn) DeleteExchange(ctx context.Context, name string) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	if err := c.mm.DeleteExchange(ctx, name); err != nil {
		return err
	}
	return c.registry.sync(ctx)
}

// DeclareQueue implements driver.Conn.
func (c *conn) DeclareQueue(ctx context.Context, q driver.Queue) (string, error) {
	if err := c.check(ctx); err != nil {
		return "", err
	}
	if q.MaxLength > 0 || q.Expires > 0 {
		return "", fmt.Errorf("%w: zmq:// queues have no max length or expiry", driver.ErrUnsupported)
	}
	if q.Name == "" {
		q.Name = "amq.gen-" + randomID()
	}
	rec := matchmaker.Queue{
		Name: q.Name, Durable: q.Durable, Exclusive: q.Exclusive, AutoDelete: q.AutoDelete,
		MessageTTL: q.MessageTTL, DeadLetterExchange: q.DeadLetterExchange,
		DeadLetterRoutingKey: q.DeadLetterRoutingKey, DeliveryLimit: q.DeliveryLimit,
	}
	if q.Exclusive {
		rec.Owner = c.id
	}
	if err := c.mm.DeclareQueue(ctx, rec); err != nil {
		return "", err
	}
	return q.Name, c.registry.sync(ctx)
}

// DeleteQueue implements driver.Conn. It returns how many messages this
// node held for the queue; other senders drop theirs when they see the
// deletion.
func (c *conn) DeleteQueue(ctx context.Context, name string) (int, error) {
	if err := c.check(ctx); err != nil {
		return 0, err
	}
	return c.deleteQueue(ctx, name)
}

func (c *conn) deleteQueue(ctx context.Context, name string) (int, error) {
	if _, err := c.registry.usableQueue(ctx, name); err != nil {
		if errors.Is(err, driver.ErrNotFound) {
			return 0, nil
		}
		return 0, err
	}
	v, err := c.registry.load(ctx, false)
	if err != nil {
		return 0, err
	}
	n := c.sender.purge(name)
	if err := c.mm.DeleteQueue(ctx, name); err != nil {
		return n, err
	}
	if err := c.registry.sync(ctx); err != nil {
		return n, err
	}
	for _, b := range v.reg.Bindings {
		if b.Queue == name {
			c.autoDeleteExchange(ctx, b.Exchange)
		}
	}
	return n, nil
}

// PurgeQueue implements driver.Conn: it drops the messages this node holds
// for the queue that no consumer has; other nodes' are not counted.
func (c *conn) PurgeQueue(ctx context.Context, name string) (int, error) {
	if err := c.check(ctx); err != nil {
		return 0, err
	}
	if _, err := c.registry.usableQueue(ctx, name); err != nil {
		return 0, err
	}
	return c.sender.purge(name), nil
}

// Bind implements driver.Conn.
func (c *conn) Bind(ctx context.Context, b driver.Binding) error {
	if err := c.checkBinding(ctx, b); err != nil {
		return err
	}
	if err := c.mm.Bind(ctx, matchmaker.Binding(b)); err != nil {
		return err
	}
	return c.registry.sync(ctx)
}

// Unbind implements driver.Conn.
func (c *conn) Unbind(ctx context.Context, b driver.Binding) error {
	if err := c.checkBinding(ctx, b); err != nil {
		return err
	}
	if err := c.mm.Unbind(ctx, matchmaker.Binding(b)); err != nil {
		return err
	}
	if err := c.registry.sync(ctx); err != nil {
		return err
	}
	c.autoDeleteExchange(ctx, b.Exchange)
	return nil
}

// checkBinding checks that the node is open and that a binding's
// exchange and queue exist, the queue being one this node may use.
func (c *conn) checkBinding(ctx context.Context, b driver.Binding) error {
	if err := c.check(ctx); err != nil {
		return err
	}
	if _, err := c.registry.exchange(ctx, b.Exchange); err != nil {
		return err
	}
	_, err := c.registry.usableQueue(ctx, b.Queue)
	return err
}

// autoDeleteExchange deletes an auto-delete exchange left without
// bindings.
func (c *conn) autoDeleteExchange(ctx context.Context, name string) {
	v, err := c.registry.load(ctx, true)
	if err != nil {
		return
	}
	x, ok := v.reg.Exchanges[name]
	if !ok || !x.AutoDelete || v.routes.HasBindings(name) {
		return
	}
	if err := c.mm.DeleteExchange(ctx, name); err != nil {
		c.logger.WarnContext(ctx, "zmq: deleting an unbound auto-delete exchange failed", "exchange", name, "err", err)
		return
	}
	_ = c.registry.sync(ctx)
}

// autoDeleteQueue deletes an auto-delete queue whose last consumer went.
func (c *conn) autoDeleteQueue(ctx context.Context, name string) {
	reg, err := c.mm.Refresh(ctx)
	if err != nil {
		return
	}
	q, ok := reg.Queues[name]
	if !ok || !q.AutoDelete || len(reg.Consumers[name]) > 0 {
		return
	}
	if _, err := c.deleteQueue(ctx, name); err != nil {
		c.logger.WarnContext(ctx, "zmq: deleting an auto-delete queue without consumers failed", "queue", name, "err", err)
	}
}
