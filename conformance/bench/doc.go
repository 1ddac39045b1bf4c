// Package bench is Switchyard's benchmark harness: the workloads that
// measure a backend through Switchyard's portable API and, beside it in
// the same run, through the backend's raw client (a Go channel for
// memory://, amqp091-go for rabbit://, go-amqp for amqp://, zmq4 for
// zmq://); the measurement (rates, call latencies, allocations); and the
// report (a table, a chart, progress lines).
//
// Two front ends share it, so that a figure means the same thing
// wherever it comes from. The switchyard command's bench subcommand turns
// its flags into Backends and Limits and calls Run. The drivers' benchmark
// tests call RunBenchmarks, as go-cloud's drivers call
// drivertest.RunBenchmarks: every backend is measured by the same cases
// under the same names (BenchmarkBackend/rpc/switchyard,
// BenchmarkBackend/rpc/raw, ...). Calls is the loop of the benchmarks the
// cases do not cover, which the drivers and rpc keep.
//
// It stands beside package conformance, as go-cloud's drivertest holds
// both a driver's conformance tests and its benchmarks: a driver's tests
// import the two. Its raw clients are tuned to do what the drivers do,
// promise for promise, rather than to be examples of their libraries.
package bench
