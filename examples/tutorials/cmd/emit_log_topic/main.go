// Command emit_log_topic is RabbitMQ's emit_log_topic.go (tutorial 5, topics) on Switchyard:
// it publishes a log with a routing key to the topic exchange "logs_topic".
// The -url flag picks the backend (default memory://); -h prints the usage.
// The program's logic is in package tutorials.
package main

import "github.com/switchyard-mq/switchyard/examples/tutorials/internal/cli"

func main() { cli.Main("emit_log_topic") }
