"""What oslo.messaging opens for N RPC servers in one process (issue 16).

    /usr/bin/python3 oslo_scale.py [N]

Starts N RPC servers (topics scale_0 .. scale_<N-1>, server "host",
threading executor) on ONE transport in a virtual host of its own on the
RabbitMQ at 127.0.0.1:5672 (management API on 15672, guest/guest), calls
each once through one RPCClient per topic, then prints the connections and
channels RabbitMQ shows for the virtual host, and the process's threads.
The virtual host is deleted at the end.
"""
import base64
import json
import sys
import threading
import time
import urllib.request
import uuid

from oslo_config import cfg
import oslo_messaging as messaging

API = 'http://127.0.0.1:15672/api'
AUTH = 'Basic ' + base64.b64encode(b'guest:guest').decode()


def api(method, path, body=None):
    req = urllib.request.Request(API + path, method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={'Authorization': AUTH, 'Content-Type': 'application/json'})
    with urllib.request.urlopen(req, timeout=60) as resp:
        data = resp.read()
    return json.loads(data) if data else None


class Echo(object):
    def echo(self, ctxt, n):
        return n


def settled_counts(vhost):
    """Connections and channels once two readings a second apart agree."""
    prev = None
    for _ in range(60):
        cur = (len(api('GET', '/vhosts/%s/connections' % vhost)),
               len(api('GET', '/vhosts/%s/channels' % vhost)))
        if cur == prev:
            return cur
        prev = cur
        time.sleep(1)
    return prev


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    vhost = 'sy-oslo-scale-' + uuid.uuid4().hex[:8]
    api('PUT', '/vhosts/' + vhost)
    api('PUT', '/permissions/%s/guest' % vhost, {'configure': '.*', 'write': '.*', 'read': '.*'})
    try:
        cfg.CONF([], project='oslo-scale')
        transport = messaging.get_rpc_transport(
            cfg.CONF, url='rabbit://guest:guest@127.0.0.1:5672/' + vhost)
        threads0 = threading.active_count()
        servers = []
        for i in range(n):
            target = messaging.Target(topic='scale_%d' % i, server='host')
            srv = messaging.get_rpc_server(transport, target, [Echo()], executor='threading')
            srv.start()
            servers.append(srv)
        for i in range(n):
            client = messaging.get_rpc_client(transport, messaging.Target(topic='scale_%d' % i), timeout=60)
            assert client.call({}, 'echo', n=i) == i
        connections, channels = settled_counts(vhost)
        print('oslo.messaging %d servers: %d connections, %d channels, %.1f threads per server'
              % (n, connections, channels, (threading.active_count() - threads0) / n), flush=True)
        for srv in servers:
            srv.stop()
        for srv in servers:
            srv.wait()
        transport.cleanup()
    finally:
        api('DELETE', '/vhosts/' + vhost)


if __name__ == '__main__':
    main()
