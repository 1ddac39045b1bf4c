// Command receive is RabbitMQ's receive.go (tutorial 1, "Hello World!") on Switchyard:
// it prints the messages of the queue "hello".
// The -url flag picks the backend (default memory://); -h prints the usage.
// The program's logic is in package tutorials.
package main

import "github.com/switchyard-mq/switchyard/examples/tutorials/internal/cli"

func main() { cli.Main("receive") }
