#!/usr/bin/env python
# receive_logs.py: tutorial 3, "Publish/Subscribe", the Python (pika) program of RabbitMQ's tutorials
# (https://www.rabbitmq.com/tutorials), as RabbitMQ publishes it at
# https://github.com/rabbitmq/rabbitmq-tutorials/blob/main/python/receive_logs.py.
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

    channel.exchange_declare(exchange="logs", exchange_type="fanout")

    result = channel.queue_declare(queue="", exclusive=True)
    queue_name = result.method.queue

    channel.queue_bind(exchange="logs", queue=queue_name)

    def callback(ch, method, properties, body):
        print(f" [x] {body.decode()}")

    print(" [*] Waiting for logs. To exit press CTRL+C")
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
