"""An oslo.messaging RPC server that the Go service calls (topic "hello").

    OS_DEFAULT__TRANSPORT_URL=rabbit://guest:guest@127.0.0.1:5672/ /usr/bin/python3 server.py

Interrupt (or SIGTERM) to stop.
"""
import signal
import sys

from oslo_config import cfg
import oslo_messaging as messaging


class HelloEndpoint(object):
    target = messaging.Target(version='1.0')

    def hello(self, ctxt, name):
        return 'Hello, %s, from Python' % name


def main():
    cfg.CONF(sys.argv[1:])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    transport = messaging.get_rpc_transport(cfg.CONF)
    target = messaging.Target(topic='hello', server='python-1')
    server = messaging.get_rpc_server(transport, target, [HelloEndpoint()],
                                      executor='threading')
    server.start()
    print('serving topic hello as python-1', flush=True)
    try:
        signal.pause()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.stop()
        server.wait()
        transport.cleanup()


if __name__ == '__main__':
    main()
