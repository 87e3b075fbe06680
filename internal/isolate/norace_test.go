//go:build !race

package isolate

// childMemoryLimit is the memory limit of Go children in tests.
const childMemoryLimit = 256 << 20
