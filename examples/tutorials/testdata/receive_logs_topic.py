#!/usr/bin/env python
# receive_logs_topic.py: tutorial 5, "Topics", the Python (pika) program of RabbitMQ's tutorials
# (https://www.rabbitmq.com/tutorials), as RabbitMQ publishes it at
# https://github.com/rabbitmq/rabbitmq-tutorials/blob/main/python/receive_logs_topic.py.
# One change: it connects to the broker named by the AMQP_URL environment
# variable (default amqp://localhost, the original's host="localhost" with
# pika's defaults; it imports os for that), so that a test can point it at a
# virtual host of its own.
import os
import sys

import pika


def main():
    connection = pika.BlockingConnection(
        pika.URLParameters(os.environ.get("AMQP_URL", "amqp://localhost")),
    )
    channel = connection.channel()

    channel.exchange_declare(exchange="topic_logs", exchange_type="topic")

    result = channel.queue_declare(queue="", exclusive=True)
    queue_name = result.method.queue

    binding_keys = sys.argv[1:]
    if not binding_keys:
        sys.stderr.write("Usage: %s [binding_key]...\n" % sys.argv[0])
        sys.exit(1)

    for binding_key in binding_keys:
        channel.queue_bind(
            exchange="topic_logs",
            queue=queue_name,
            routing_key=binding_key,
        )

    print(" [*] Waiting for logs. To exit press CTRL+C")

    def callback(ch, method, properties, body):
        print(f" [x] {method.routing_key}:{body.decode()}")

    channel.basic_consume(
        queue=queue_name,
        on_message_callback=callback,
        auto_ack=True,
    )

    channel.start_consuming()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("Interrupted")
        try:
            sys.exit(0)
        except SystemExit:
            os._exit(0)
