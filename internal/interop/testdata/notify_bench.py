"""Notifications through oslo.messaging, timed end to end: the Python side
of BenchmarkNotify (notify_bench_test.go).

Run with Debian's python3-oslo.messaging 14 (/usr/bin/python3):

    /usr/bin/python3 notify_bench.py --url rabbit://guest:guest@127.0.0.1:5672/vhost \
        --topic t --pool p --n 2000 --publishers 16 --size 100 --max-seconds 60

A notification listener with a pool (executor "threading", oslo's
defaults otherwise: no prefetch limit, each message acked after its
endpoint returns) consumes topic's "info" notifications; --publishers
threads share one Notifier (driver messagingv2; oslo's rabbit driver
publishes persistent messages with publisher confirms, from its pool of
connections) and publish --n notifications between them, each payload
{"data": "xxx..."} with --size bytes of data, at most 1024 ahead of the
listener. After one notification to
warm up, the time from the first publish until the listener has handled
the last one (or --max-seconds) is printed as one JSON line:
{"count": handled, "elapsed": seconds}.

It uses only oslo.messaging's public API: get_notification_transport,
Notifier, get_notification_listener.
"""

import argparse
import json
import os
import sys
import threading
import time

from oslo_config import cfg
import oslo_messaging


WINDOW = 1024


class Counter(object):
    """An endpoint for "info" notifications that counts them."""

    def __init__(self, expect):
        self.lock = threading.Lock()
        self.count = 0
        self.expect = expect
        self.warmed = threading.Event()
        self.done = threading.Event()
        # Publishers stay at most WINDOW notifications ahead of the
        # listener, as the Go sides do.
        self.window = threading.BoundedSemaphore(WINDOW)

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        with self.lock:
            self.count += 1
            count = self.count
        self.window.release()
        if count == 1:
            self.warmed.set()
        if count == self.expect:
            self.done.set()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--pool", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--publishers", type=int, required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--max-seconds", type=float, required=True)
    args = parser.parse_args()

    conf = cfg.CONF
    conf([], project="notify-bench")
    transport = oslo_messaging.get_notification_transport(conf, url=args.url)
    counter = Counter(1 + args.n)
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=args.topic)], [counter],
        executor="threading", pool=args.pool)
    listener.start()
    notifier = oslo_messaging.Notifier(transport, publisher_id="bench.python",
                                       driver="messagingv2", topics=[args.topic])
    payload = {"data": "x" * args.size}

    counter.window.acquire()
    notifier.info({}, "switchyard.bench", payload)
    if not counter.warmed.wait(args.max_seconds):
        raise SystemExit("the warm-up notification did not arrive")

    tickets = iter(range(args.n))
    tickets_lock = threading.Lock()

    def publish():
        while True:
            with tickets_lock:
                if next(tickets, None) is None:
                    return
            if not counter.window.acquire(timeout=args.max_seconds):
                return
            notifier.info({}, "switchyard.bench", payload)

    start = time.monotonic()
    threads = [threading.Thread(target=publish, daemon=True) for _ in range(args.publishers)]
    for t in threads:
        t.start()
    counter.done.wait(args.max_seconds)
    elapsed = time.monotonic() - start
    with counter.lock:
        handled = counter.count - 1
    sys.stdout.write(json.dumps({"count": handled, "elapsed": elapsed}) + "\n")
    sys.stdout.flush()

    listener.stop()
    listener.wait()
    transport.cleanup()
    # oslo's executor threads are not daemons: leave without joining them.
    os._exit(0)


if __name__ == "__main__":
    main()
