//go:build race

package isolate

// childMemoryLimit is the memory limit of Go children in tests: the race
// runtime needs about 400 MiB of RLIMIT_DATA just to start.
const childMemoryLimit = 600 << 20
