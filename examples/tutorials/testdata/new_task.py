#!/usr/bin/env python
# new_task.py: tutorial 2, "Work Queues", the Python (pika) program of RabbitMQ's tutorials
# (https://www.rabbitmq.com/tutorials), as RabbitMQ publishes it at
# https://github.com/rabbitmq/rabbitmq-tutorials/blob/main/python/new_task.py.
# One change: it connects to the broker named by the AMQP_URL environment
# variable (default amqp://localhost, the original's host="localhost" with
# pika's defaults; it imports os for that), so that a test can point it at a
# virtual host of its own.
# And one more, for Debian 12's pika 1.2.0, which has no pika.DeliveryMode
# (pika 1.3 added it): where the original has pika.DeliveryMode.Persistent,
# this has its value, 2, as the tutorial had before pika 1.3. The message
# sent is the same.
import os
import sys

import pika

connection = pika.BlockingConnection(
    pika.URLParameters(os.environ.get("AMQP_URL", "amqp://localhost")),
)
channel = connection.channel()

channel.queue_declare(queue="task_queue", durable=True, arguments={"x-queue-type": "quorum"})

message = " ".join(sys.argv[1:]) or "Hello World!"
channel.basic_publish(
    exchange="",
    routing_key="task_queue",
    body=message,
    properties=pika.BasicProperties(
        delivery_mode=2,  # pika.DeliveryMode.Persistent
    ),
)
print(f" [x] Sent {message}")

connection.close()
