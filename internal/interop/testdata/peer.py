"""An oslo.messaging peer that the Go interop tests drive.

Run with Debian's python3-oslo.messaging 14 (/usr/bin/python3), or with
oslo.messaging 18 in the Debian sid chroot (.ci/sid-python3); oslo reads the
[oslo_messaging_rabbit] options in the URL's query:

    /usr/bin/python3 peer.py --url rabbit://guest:guest@127.0.0.1:5672/vhost
    .ci/sid-python3 peer.py --url 'rabbit://guest:guest@127.0.0.1:5682/vhost?rabbit_quorum_queue=true'

It reads one JSON command per line on stdin and answers each on stdout with
{"id": <the command's id>, "result": ...} or {"id": ..., "error": "..."}.
What its servers and listeners receive is written as it happens, as
{"event": <stream>, "data": ...} lines. Commands run in threads of their own,
so a slow call does not hold up the others. End of stdin stops every server
and listener and exits. A call command may list allowed_remote_exmods: its
client then rebuilds the exceptions of those modules (peer_errors, say)
instead of raising oslo_messaging.RemoteError.

It uses only oslo.messaging's public API, as its documentation shows
(get_rpc_transport, get_rpc_server, get_rpc_client, Notifier,
get_notification_listener, NotificationFilter), plus kombu for the
malformed messages that oslo.messaging cannot send.
"""

import argparse
import json
import logging
import math
import os
import sys
import threading
import time
import urllib.parse

from oslo_config import cfg
import oslo_messaging

import peer_errors

LOG = logging.getLogger("interop-peer")
OUT_LOCK = threading.Lock()


def emit(obj):
    line = json.dumps(obj)
    with OUT_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def same(a, b):
    """Equal in value and in every type: 2 is not 2.0, True is not 1."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def jsonable(value):
    """value if JSON can hold it, else its repr."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value


def describe(exc):
    """What a caller learns from an exception, for the Go side to check."""
    return {
        "class": type(exc).__name__,
        "module": type(exc).__module__,
        "mro": ["%s.%s" % (c.__module__, c.__qualname__) for c in type(exc).__mro__],
        "str": str(exc),
        "args": [repr(a) for a in exc.args],
        "args_json": jsonable(list(exc.args)),
        "kwargs": jsonable(getattr(exc, "kwargs", None)),
        "exc_type": getattr(exc, "exc_type", None),
        "value": getattr(exc, "value", None),
        "traceback": getattr(exc, "traceback", None),
        "is_value_error": isinstance(exc, ValueError),
        "is_remote_error": isinstance(exc, oslo_messaging.RemoteError),
        "is_timeout": isinstance(exc, oslo_messaging.MessagingTimeout),
    }


def request_context(values):
    """values as a service passes its request context to a Notifier.

    A service passes an oslo.context RequestContext, which oslo.messaging 18
    sends as its redacted_copy() (and a plain dict not at all: it sends {}
    instead); oslo.messaging 14 cuts either to an allow-list of keys. Where
    oslo.context is not installed (Debian 12 has oslo.messaging 14 without
    it), values stay a dict, which oslo.messaging 14 cuts alike.
    """
    try:
        from oslo_context import context
    except ImportError:
        return values
    return context.RequestContext.from_dict(values)


class Endpoint(object):
    """The Python server's methods; version 1.3, as the Go server's."""

    target = oslo_messaging.Target(version="1.3")

    def __init__(self, stream, server):
        self.stream = stream
        self.server = server

    def echo(self, ctxt, value, raw=None):
        # raw is the JSON text the caller meant to send: decoding it here
        # shows the value arrived with its exact types.
        out = {"value": value, "type": type(value).__name__}
        if raw is not None:
            out["same"] = same(json.loads(raw), value)
        return out

    def fail(self, ctxt, message):
        raise peer_errors.QuotaExceeded(message, code=42, limits={"cores": 8, "ram_gb": 2.5})

    def fail_not_found(self, ctxt, instance_id):
        raise peer_errors.InstanceNotFound(instance_id=instance_id)

    def fail_value(self, ctxt, message):
        raise ValueError(message)

    def sleep(self, ctxt, seconds):
        time.sleep(seconds)
        return "slept %s" % seconds

    def context(self, ctxt):
        return ctxt

    def whoami(self, ctxt):
        return self.server

    def nothing(self, ctxt):
        return None

    def record(self, ctxt, token):
        emit({"event": self.stream, "data": {"server": self.server, "token": token}})


class NotificationEndpoint(object):
    """Records every notification it gets, at any priority."""

    def __init__(self, stream, filter_rule):
        self.stream = stream
        if filter_rule is not None:
            self.filter_rule = filter_rule

    def _record(self, priority, ctxt, publisher_id, event_type, payload, metadata):
        emit({"event": self.stream, "data": {
            "priority": priority, "ctxt": ctxt, "publisher_id": publisher_id,
            "event_type": event_type, "payload": payload, "metadata": metadata}})

    def audit(self, *a):
        self._record("audit", *a)

    def debug(self, *a):
        self._record("debug", *a)

    def info(self, *a):
        self._record("info", *a)

    def warn(self, *a):
        self._record("warn", *a)

    def error(self, *a):
        self._record("error", *a)

    def critical(self, *a):
        self._record("critical", *a)

    def sample(self, *a):
        self._record("sample", *a)


class Peer(object):
    def __init__(self, url):
        self.url = url
        # The global ConfigOpts, as oslo's documentation uses: some of
        # oslo.messaging 14's options (oslo_messaging_metrics) are
        # registered only there.
        self.conf = cfg.CONF
        self.conf([], project="interop-peer")
        self.rpc_transport = oslo_messaging.get_rpc_transport(self.conf, url=url)
        self.notify_transport = oslo_messaging.get_notification_transport(self.conf, url=url)
        self.lock = threading.Lock()
        self.exmod_transports = {}  # allowed_remote_exmods -> RPC transport
        self.running = {}  # name -> server or listener
        self.notifiers = {}

    def transport_for(self, exmods):
        """The RPC transport whose clients rebuild the exceptions of exmods."""
        if not exmods:
            return self.rpc_transport
        key = tuple(exmods)
        with self.lock:
            transport = self.exmod_transports.get(key)
            if transport is None:
                transport = oslo_messaging.get_rpc_transport(
                    self.conf, url=self.url, allowed_remote_exmods=list(key))
                self.exmod_transports[key] = transport
        return transport

    def client(self, cmd):
        target = oslo_messaging.Target(topic=cmd["topic"])
        client = oslo_messaging.get_rpc_client(self.transport_for(cmd.get("allowed_remote_exmods")), target)
        prepared = {k: cmd[k] for k in ("server", "version", "timeout", "fanout",
                                       "call_monitor_timeout", "namespace") if cmd.get(k) is not None}
        return client.prepare(**prepared) if prepared else client

    def op_rpc_server(self, cmd):
        name = cmd["name"]
        target = oslo_messaging.Target(topic=cmd["topic"], server=cmd["server"])
        server = oslo_messaging.get_rpc_server(
            self.rpc_transport, target, [Endpoint(cmd.get("stream", name), cmd["server"])], executor="threading")
        server.start()
        with self.lock:
            self.running[name] = server
        return "started"

    def op_listener(self, cmd):
        name = cmd["name"]
        targets = [oslo_messaging.Target(topic=t, exchange=cmd.get("exchange")) for t in cmd["topics"]]
        filter_rule = None
        if cmd.get("filter"):
            filter_rule = oslo_messaging.NotificationFilter(**cmd["filter"])
        listener = oslo_messaging.get_notification_listener(
            self.notify_transport, targets, [NotificationEndpoint(name, filter_rule)],
            executor="threading", pool=cmd.get("pool") or None)
        listener.start()
        with self.lock:
            self.running[name] = listener
        return "started"

    def op_stop(self, cmd):
        with self.lock:
            thing = self.running.pop(cmd["name"])
        thing.stop()
        thing.wait()
        return "stopped"

    def op_call(self, cmd):
        start = time.monotonic()
        try:
            result = self.client(cmd).call(cmd.get("ctxt") or {}, cmd["method"], **cmd.get("args", {}))
        except Exception as exc:  # the Go side checks what was raised
            return {"raised": describe(exc), "elapsed": time.monotonic() - start}
        out = {"result": result, "elapsed": time.monotonic() - start}
        if "expect" in cmd:
            out["same"] = same(cmd["expect"], result)
        return out

    def op_cast(self, cmd):
        self.client(cmd).cast(cmd.get("ctxt") or {}, cmd["method"], **cmd.get("args", {}))
        return "sent"

    def op_notify(self, cmd):
        key = (cmd["driver"], tuple(cmd["topics"]), cmd["publisher_id"])
        with self.lock:
            notifier = self.notifiers.get(key)
            if notifier is None:
                notifier = oslo_messaging.Notifier(
                    self.notify_transport, publisher_id=cmd["publisher_id"],
                    driver=cmd["driver"], topics=cmd["topics"])
                self.notifiers[key] = notifier
        ctxt = cmd.get("ctxt") or {}
        if cmd.get("request_context"):
            ctxt = request_context(ctxt)
        method = getattr(notifier, cmd["priority"])
        method(ctxt, cmd["event_type"], cmd["payload"])
        return {"ctxt_type": type(ctxt).__name__}

    def op_raw_publish(self, cmd):
        # kombu, which oslo.messaging's rabbit driver is built on, sends
        # what oslo.messaging never would.
        import kombu
        parsed = urllib.parse.urlsplit(self.url)
        amqp_url = urllib.parse.urlunsplit(("amqp", parsed.netloc, parsed.path, "", ""))
        with kombu.Connection(amqp_url) as conn:
            producer = conn.Producer()
            kwargs = {"exchange": cmd["exchange"], "routing_key": cmd["routing_key"],
                      "content_encoding": "utf-8", "delivery_mode": 2}
            if cmd.get("content_type") is not None:
                kwargs["content_type"] = cmd["content_type"]
            producer.publish(cmd["body"].encode("utf-8"), **kwargs)
        return "sent"

    def op_bench(self, cmd):
        """Sequential calls, timed here so the pipe to Go is not counted."""
        client = self.client(cmd)
        ctxt, method, args = cmd.get("ctxt") or {}, cmd["method"], cmd.get("args", {})
        if cmd.get("warm_up", True):
            client.call(ctxt, method, **args)  # the reply queue is declared on the first call
        latencies = []
        deadline = time.monotonic() + cmd["max_seconds"]
        start = time.monotonic()
        for _ in range(cmd["n"]):
            t0 = time.monotonic()
            client.call(ctxt, method, **args)
            latencies.append(time.monotonic() - t0)
            if t0 > deadline:
                break
        elapsed = time.monotonic() - start

        out = {"count": len(latencies), "elapsed": elapsed}
        if cmd.get("latencies"):
            out["latencies"] = latencies
        latencies = sorted(latencies)

        def pct(p):
            return latencies[min(len(latencies) - 1, int(p * len(latencies)))]
        out.update(p50=pct(0.50), p99=pct(0.99))
        return out

    def op_versions(self, cmd):
        """What this peer runs: the stack a test asked for."""
        import importlib.metadata
        return {"python": sys.version.split()[0],
                "oslo.messaging": importlib.metadata.version("oslo.messaging"),
                "kombu": importlib.metadata.version("kombu")}

    def run(self, cmd):
        try:
            result = getattr(self, "op_" + cmd["op"])(cmd)
        except Exception as exc:
            LOG.exception("command %s failed", cmd.get("op"))
            emit({"id": cmd.get("id"), "error": "%s: %s" % (type(exc).__name__, exc)})
            return
        emit({"id": cmd.get("id"), "result": result})

    def shutdown(self):
        with self.lock:
            running = list(self.running.values())
            self.running.clear()
        for thing in running:
            thing.stop()
        for thing in running:
            thing.wait()
        self.rpc_transport.cleanup()
        for transport in self.exmod_transports.values():
            transport.cleanup()
        self.notify_transport.cleanup()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="peer %(asctime)s %(levelname)s %(name)s: %(message)s")
    peer = Peer(args.url)
    emit({"ready": True})
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        threading.Thread(target=peer.run, args=(cmd,), daemon=True).start()
    peer.shutdown()
    sys.stdout.flush()
    # oslo's executor threads are not daemons: leave without joining them.
    os._exit(0)


if __name__ == "__main__":
    main()
