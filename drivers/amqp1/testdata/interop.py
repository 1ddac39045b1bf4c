#!/usr/bin/python3
"""An independent AMQP 1.0 peer for drivers/amqp1's interop test, on Qpid
Proton's Python client (Debian's python3-qpid-proton; run it with
/usr/bin/python3).

  interop.py send    URL VHOST ADDRESS SPEC_JSON   send one message
  interop.py receive URL VHOST ADDRESS TIMEOUT     receive one, print it as JSON

VHOST is "" for none; RabbitMQ selects a virtual host by "vhost:NAME" as the
connection's hostname. SPEC_JSON and the printed JSON use the same keys:
body (text), id, correlation_id, reply_to, subject, content_type,
content_encoding, durable, creation_time (seconds), properties (a flat
object of strings, integers and booleans).
"""
import json
import sys

from proton import Message
from proton.utils import BlockingConnection


def connect(url, vhost):
    kwargs = {}
    if vhost:
        kwargs["virtual_host"] = "vhost:" + vhost
    if "@" not in url:
        kwargs["allowed_mechs"] = "ANONYMOUS"
    return BlockingConnection(url, timeout=20, **kwargs)


def send(url, vhost, address, spec):
    m = Message(body=spec["body"].encode(), inferred=True)  # a data section, as the driver sends
    m.id = spec.get("id")
    m.correlation_id = spec.get("correlation_id")
    m.reply_to = spec.get("reply_to")
    m.subject = spec.get("subject")
    m.content_type = spec.get("content_type")
    m.content_encoding = spec.get("content_encoding")
    m.durable = spec.get("durable", False)
    if "creation_time" in spec:
        m.creation_time = spec["creation_time"]
    m.properties = spec.get("properties")
    conn = connect(url, vhost)
    try:
        conn.create_sender(address).send(m)  # waits for the broker to settle it
    finally:
        conn.close()


def receive(url, vhost, address, timeout):
    conn = connect(url, vhost)
    try:
        r = conn.create_receiver(address, credit=1)
        m = r.receive(timeout=timeout)
        r.accept()
    finally:
        conn.close()
    body = m.body
    if isinstance(body, (bytes, memoryview)):
        body = bytes(body).decode()
    props = {}
    for k, v in (m.properties or {}).items():
        props[str(k)] = v if isinstance(v, (bool, int, float, str)) else str(v)
    json.dump({
        "body": body,
        "id": None if m.id is None else str(m.id),
        "correlation_id": None if m.correlation_id is None else str(m.correlation_id),
        "reply_to": m.reply_to,
        "subject": m.subject,
        "content_type": m.content_type,
        "content_encoding": m.content_encoding,
        "durable": m.durable,
        "creation_time": m.creation_time,
        "properties": props,
    }, sys.stdout)


def main():
    if len(sys.argv) != 6 or sys.argv[1] not in ("send", "receive"):
        sys.exit(__doc__)
    cmd, url, vhost, address, arg = sys.argv[1:]
    if cmd == "send":
        send(url, vhost, address, json.loads(arg))
    else:
        receive(url, vhost, address, float(arg))


if __name__ == "__main__":
    main()
