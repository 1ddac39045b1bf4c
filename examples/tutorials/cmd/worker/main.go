// Command worker is RabbitMQ's worker.go (tutorial 2, work queues) on Switchyard:
// it does the tasks of "task_queue", one at a time.
// The -url flag picks the backend (default memory://); -h prints the usage.
// The program's logic is in package tutorials.
package main

import "github.com/switchyard-mq/switchyard/examples/tutorials/internal/cli"

func main() { cli.Main("worker") }
