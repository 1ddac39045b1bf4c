"""Notifications through oslo.messaging, timed end to end: the Python side
of BenchmarkNotify (notify_bench_test.go).

Run with Debian's python3-oslo.messaging 14 (/usr/bin/python3):

    /usr/bin/python3 notify_bench.py --url rabbit://guest:guest@127.0.0.1:5672/vhost \
        --topic t --pool p --publishers 16 --size 100 --max-seconds 60

A notification listener with a pool (executor "threading", oslo's
defaults otherwise: no prefetch limit, each message acked after its
endpoint returns) consumes topic's "info" notifications; --publishers
threads share one Notifier (driver messagingv2; oslo's rabbit driver
publishes persistent messages with publisher confirms, from its pool of
connections), each payload {"data": "xxx..."} with --size bytes of data,
at most 1024 notifications ahead of the listener. After one notification
to warm up it prints {"ready": true}; then for each line n it reads on
stdin, the publishers publish n notifications between them, and it
prints the time from the first publish until the listener has handled
the last (or --max-seconds) as one JSON line: {"count": handled,
"elapsed": seconds}. End of stdin stops it.

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

    def __init__(self):
        self.lock = threading.Lock()
        self.count = 0
        self.target = None
        self.reached = threading.Event()
        # Publishers stay at most WINDOW notifications ahead of the
        # listener, as the Go sides do.
        self.window = threading.Semaphore(WINDOW)

    def expect(self, n):
        """Arms reached for when n more notifications are handled."""
        with self.lock:
            self.target = self.count + n
            self.reached.clear()

    def info(self, ctxt, publisher_id, event_type, payload, metadata):
        self.window.release()
        with self.lock:
            self.count += 1
            if self.target is not None and self.count >= self.target:
                self.target = None
                self.reached.set()


def run_pass(notifier, counter, n, publishers, payload, max_seconds):
    """Publishes n notifications from publishers threads; returns the
    count handled and the seconds from the first publish until the last
    was handled."""
    with counter.lock:
        before = counter.count
    counter.expect(n)
    tickets = iter(range(n))
    tickets_lock = threading.Lock()

    def publish():
        while True:
            with tickets_lock:
                if next(tickets, None) is None:
                    return
            if not counter.window.acquire(timeout=max_seconds):
                return
            notifier.info({}, "switchyard.bench", payload)

    start = time.monotonic()
    threads = [threading.Thread(target=publish, daemon=True) for _ in range(publishers)]
    for t in threads:
        t.start()
    counter.reached.wait(max_seconds)
    elapsed = time.monotonic() - start
    with counter.lock:
        return counter.count - before, elapsed


def print_line(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--pool", required=True)
    parser.add_argument("--publishers", type=int, required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--max-seconds", type=float, required=True)
    args = parser.parse_args()

    conf = cfg.CONF
    conf([], project="notify-bench")
    transport = oslo_messaging.get_notification_transport(conf, url=args.url)
    counter = Counter()
    listener = oslo_messaging.get_notification_listener(
        transport, [oslo_messaging.Target(topic=args.topic)], [counter],
        executor="threading", pool=args.pool)
    listener.start()
    notifier = oslo_messaging.Notifier(transport, publisher_id="bench.python",
                                       driver="messagingv2", topics=[args.topic])
    payload = {"data": "x" * args.size}

    count, _ = run_pass(notifier, counter, 1, 1, payload, args.max_seconds)
    if count < 1:
        raise SystemExit("the warm-up notification did not arrive")
    print_line({"ready": True})
    for line in sys.stdin:
        if not line.strip():
            continue
        count, elapsed = run_pass(notifier, counter, int(line), args.publishers, payload, args.max_seconds)
        print_line({"count": count, "elapsed": elapsed})

    listener.stop()
    listener.wait()
    transport.cleanup()
    # oslo's executor threads are not daemons: leave without joining them.
    os._exit(0)


if __name__ == "__main__":
    main()
