#!/usr/bin/env python
# emit_log.py: tutorial 3, "Publish/Subscribe", the Python (pika) program of RabbitMQ's tutorials
# (https://www.rabbitmq.com/tutorials), as RabbitMQ publishes it at
# https://github.com/rabbitmq/rabbitmq-tutorials/blob/main/python/emit_log.py.
# One change: it connects to the broker named by the AMQP_URL environment
# variable (default amqp://localhost, the original's host="localhost" with
# pika's defaults; it imports os for that), so that a test can point it at a
# virtual host of its own.
import os
import sys

import pika

connection = pika.BlockingConnection(
    pika.URLParameters(os.environ.get("AMQP_URL", "amqp://localhost")),
)
channel = connection.channel()

channel.exchange_declare(exchange="logs", exchange_type="fanout")

message = " ".join(sys.argv[1:]) or "info: Hello World!"
channel.basic_publish(exchange="logs", routing_key="", body=message)
print(f" [x] Sent {message}")

connection.close()
