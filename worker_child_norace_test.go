//go:build !race

package resq_test

// childMemoryLimit is the memory limit of Go children in tests.
const childMemoryLimit = 256 << 20
