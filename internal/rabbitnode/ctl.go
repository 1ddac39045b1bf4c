package rabbitnode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrNotFound is returned when a queue or connection asked for does not
// exist.
var ErrNotFound = errors.New("rabbitnode: not found")

// Ctl runs rabbitmqctl with args against a node of the cluster that runs
// and is not frozen (the first such node), as Node.Ctl does. Cluster-wide
// commands (list_queues, close_all_connections, add_vhost, ...) go here.
func (c *Cluster) Ctl(ctx context.Context, args ...string) (string, error) {
	n, err := c.live()
	if err != nil {
		return "", err
	}
	return n.Ctl(ctx, args...)
}

// live is the first node that runs and is not frozen.
func (c *Cluster) live() (*Node, error) {
	for _, n := range c.nodes {
		if n.Running() && !n.Frozen() {
			return n, nil
		}
	}
	return nil, fmt.Errorf("no node of %s runs unfrozen: %w", c.id, ErrNotRunning)
}

// node is the cluster's node named name, or nil.
func (c *Cluster) node(name string) *Node {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// AddVHost creates a virtual host and gives guest every permission on it.
func (c *Cluster) AddVHost(ctx context.Context, name string) error {
	if _, err := c.Ctl(ctx, "add_vhost", name); err != nil {
		return err
	}
	if _, err := c.Ctl(ctx, "set_permissions", "-p", name, "guest", ".*", ".*", ".*"); err != nil {
		return err
	}
	return nil
}

// DeleteVHost deletes a virtual host, its queues and exchanges, and closes
// its connections.
func (c *Cluster) DeleteVHost(ctx context.Context, name string) error {
	_, err := c.Ctl(ctx, "delete_vhost", name)
	return err
}

// CloseAllConnections makes the cluster close every client connection of
// the virtual host (every connection of every virtual host when vhost is
// empty), on every node, with reason as the close's text.
func (c *Cluster) CloseAllConnections(ctx context.Context, vhost, reason string) error {
	args := []string{"close_all_connections", "-p", vhost, reason}
	if vhost == "" {
		args = []string{"close_all_connections", "--global", reason}
	}
	_, err := c.Ctl(ctx, args...)
	return err
}

// QueueLeader returns the node that hosts a queue: a quorum queue's
// leader, or a classic queue's (master) node. Right after its leader is
// killed, a quorum queue names the dead node until it elects another one:
// poll until the answer changes.
func (c *Cluster) QueueLeader(ctx context.Context, vhost, queue string) (*Node, error) {
	out, err := c.Ctl(ctx, "list_queues", "-p", vhost, "name", "leader", "pid", "--quiet", "--no-table-headers")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(out, "\n") {
		cols := strings.Split(line, "\t")
		if len(cols) != 3 || cols[0] != queue {
			continue
		}
		name := cols[1]
		if name == "" { // a classic queue: its process's node
			name = pidNode(cols[2])
		}
		if n := c.node(name); n != nil {
			return n, nil
		}
		return nil, fmt.Errorf("queue %q of virtual host %q is on %q, not a node of %s", queue, vhost, name, c.id)
	}
	return nil, fmt.Errorf("queue %q of virtual host %q: %w", queue, vhost, ErrNotFound)
}

// pidNode is the node of an Erlang pid as rabbitmqctl prints it:
// <sy1a2b3c4d-1@localhost.1796614288.677.0>.
func pidNode(pid string) string {
	s := strings.TrimSuffix(strings.TrimPrefix(pid, "<"), ">")
	for range 3 {
		if i := strings.LastIndexByte(s, '.'); i >= 0 {
			s = s[:i]
		}
	}
	return s
}

// Connection is a client connection as the cluster lists it.
type Connection struct {
	// Name is RabbitMQ's name for it: "127.0.0.1:PEER -> 127.0.0.1:PORT".
	Name string
	// ClientName is the connection_name the client gave in its client
	// properties (Switchyard's "<program>:<pid>:<uuid>"), if any.
	ClientName string
	// VHost is its virtual host.
	VHost string
	// PeerPort is the client's port.
	PeerPort int
	// Node is the node it is connected to.
	Node *Node
}

// Connections lists the client connections of the virtual host on every
// node of the cluster (every virtual host's when vhost is empty).
func (c *Cluster) Connections(ctx context.Context, vhost string) ([]Connection, error) {
	out, err := c.Ctl(ctx, "list_connections", "name", "vhost", "port", "peer_port", "client_properties", "--formatter", "json", "--quiet")
	if err != nil {
		return nil, err
	}
	var rows []struct {
		Name             string            `json:"name"`
		VHost            string            `json:"vhost"`
		Port             int               `json:"port"`
		PeerPort         int               `json:"peer_port"`
		ClientProperties []json.RawMessage `json:"client_properties"`
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		return nil, fmt.Errorf("list_connections: %w: %s", err, out)
	}
	var conns []Connection
	for _, r := range rows {
		if vhost != "" && r.VHost != vhost {
			continue
		}
		conn := Connection{Name: r.Name, VHost: r.VHost, PeerPort: r.PeerPort, ClientName: clientName(r.ClientProperties)}
		for _, n := range c.nodes { // each node has a port of its own
			if n.port == r.Port {
				conn.Node = n
			}
		}
		conns = append(conns, conn)
	}
	return conns, nil
}

// clientName finds connection_name in client properties as rabbitmqctl's
// JSON shows them: [["connection_name","longstr","NAME"], ...].
func clientName(props []json.RawMessage) string {
	for _, raw := range props {
		var field []any
		if json.Unmarshal(raw, &field) != nil || len(field) != 3 || field[0] != "connection_name" {
			continue
		}
		name, _ := field[2].(string)
		return name
	}
	return ""
}

// ConnectionNode returns the node that a client connection of the virtual
// host is on: the connection whose ClientName or Name is name, or, when
// name is empty, the only connection of the virtual host.
func (c *Cluster) ConnectionNode(ctx context.Context, vhost, name string) (*Node, error) {
	conns, err := c.Connections(ctx, vhost)
	if err != nil {
		return nil, err
	}
	var found []Connection
	for _, conn := range conns {
		if name == "" || conn.ClientName == name || conn.Name == name {
			found = append(found, conn)
		}
	}
	switch {
	case len(found) == 0:
		return nil, fmt.Errorf("connection %q of virtual host %q: %w", name, vhost, ErrNotFound)
	case len(found) > 1:
		return nil, fmt.Errorf("connection %q of virtual host %q: %d connections match", name, vhost, len(found))
	case found[0].Node == nil:
		return nil, fmt.Errorf("connection %s is on no node of %s", found[0].Name, c.id)
	}
	return found[0].Node, nil
}

// RunningNodes returns the nodes that the cluster says run (rabbitmqctl
// cluster_status's running_nodes), asking a node that runs unfrozen.
func (c *Cluster) RunningNodes(ctx context.Context) ([]*Node, error) {
	out, err := c.Ctl(ctx, "cluster_status", "--formatter", "json", "--quiet")
	if err != nil {
		return nil, err
	}
	var status struct {
		Running []string `json:"running_nodes"`
	}
	if err := json.Unmarshal([]byte(out), &status); err != nil {
		return nil, fmt.Errorf("cluster_status: %w: %s", err, out)
	}
	var nodes []*Node
	for _, name := range status.Running {
		if n := c.node(name); n != nil {
			nodes = append(nodes, n)
		}
	}
	return nodes, nil
}
