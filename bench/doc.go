// Package bench is the load generator behind `gpfhir bench`: it drives HTTP requests at a FHIR server on
// loopback, closed-loop (a fixed number of connections, each sending its next request when the answer
// arrives) or open-loop (requests sent on a fixed schedule, latency measured from the scheduled instant so
// that a slow server cannot hide its queue: no coordinated omission), and reports throughput, latency
// percentiles, errors, CPU and memory, each as a ratio to a static-bytes baseline measured in the same run.
//
// It speaks HTTP only and imports no server package, so it measures any FHIR server the same way; the
// command wires it to the real gpfhir server and its development identity provider.
package bench
