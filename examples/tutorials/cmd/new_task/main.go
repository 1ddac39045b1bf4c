// Command new_task is RabbitMQ's new_task.go (tutorial 2, work queues) on Switchyard:
// it queues a task on the durable queue "task_queue".
// The -url flag picks the backend (default memory://); -h prints the usage.
// The program's logic is in package tutorials.
package main

import "github.com/switchyard-mq/switchyard/examples/tutorials/internal/cli"

func main() { cli.Main("new_task") }
