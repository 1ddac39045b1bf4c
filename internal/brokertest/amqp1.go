package brokertest

// AMQP1RabbitMQ is RabbitMQ's AMQP 1.0 plugin, which shares port 5672
// (and the broker) with AMQP 0-9-1. Tests that need a virtual host of
// their own create it (with rabbitmqctl) and put it in the URL's path.
func AMQP1RabbitMQ() Broker {
	return Broker{
		Name: "RabbitMQ (AMQP 1.0 plugin)", EnvVar: "SWITCHYARD_AMQP1_RABBIT_URL",
		DefaultURL: "amqp://guest:guest@127.0.0.1:5672/",
		HowToStart: "run .ci/run, or: apt-get install rabbitmq-server && rabbitmq-server -detached && " +
			"rabbitmq-plugins enable rabbitmq_amqp1_0 rabbitmq_management",
	}
}

// ProtonBroker is the AMQP 1.0 broker of Qpid Proton's Python examples, on
// a loopback port of its own (it takes anonymous logins only).
func ProtonBroker() Broker {
	return Broker{
		Name: "Qpid Proton example broker", EnvVar: "SWITCHYARD_PROTON_URL",
		DefaultURL: "amqp://127.0.0.1:5673",
		HowToStart: "run .ci/run, or: apt-get install -y --no-install-recommends python3-qpid-proton " +
			"libqpid-proton11-dev-examples && .ci/start-proton-broker",
	}
}
