"""oslo.messaging's documented RPC client, calling the Go service.

The last four lines are the RPCClient example of oslo.messaging's
documentation (https://docs.openstack.org/oslo.messaging/latest/reference/rpcclient.html),
as written there, but for print() around the call to show its answer.
Before them is only what makes the example a program: reading the
configuration (transport_url, from --config-file or the environment
variable OS_DEFAULT__TRANSPORT_URL), and the ctxt and arg it uses.

    OS_DEFAULT__TRANSPORT_URL=rabbit://guest:guest@127.0.0.1:5672/ /usr/bin/python3 client.py
"""
import sys

from oslo_config import cfg
import oslo_messaging as messaging

cfg.CONF(sys.argv[1:])
ctxt = {}
arg = 'Hello from Python'

transport = messaging.get_rpc_transport(cfg.CONF)
target = messaging.Target(topic='test', version='2.0')
client = messaging.get_rpc_client(transport, target)
print(client.call(ctxt, 'test', arg=arg))
