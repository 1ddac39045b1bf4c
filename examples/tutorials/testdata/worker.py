#!/usr/bin/env python
# worker.py: tutorial 2, "Work Queues", the Python (pika) program of RabbitMQ's tutorials
# (https://www.rabbitmq.com/tutorials), as RabbitMQ publishes it at
# https://github.com/rabbitmq/rabbitmq-tutorials/blob/main/python/worker.py.
# One change: it connects to the broker named by the AMQP_URL environment
# variable (default amqp://localhost, the original's host="localhost" with
# pika's defaults; it imports os for that), so that a test can point it at a
# virtual host of its own.
import os
import time

import pika

connection = pika.BlockingConnection(
    pika.URLParameters(os.environ.get("AMQP_URL", "amqp://localhost")),
)
channel = connection.channel()

channel.queue_declare(queue="task_queue", durable=True, arguments={"x-queue-type": "quorum"})
print(" [*] Waiting for messages. To exit press CTRL+C")


def callback(ch, method, properties, body):
    print(f" [x] Received {body.decode()}")
    time.sleep(body.count(b"."))
    print(" [x] Done")
    ch.basic_ack(delivery_tag=method.delivery_tag)


channel.basic_qos(prefetch_count=1)
channel.basic_consume(queue="task_queue", on_message_callback=callback)

channel.start_consuming()
