//go:build race

package fastcgi

// raceEnabled: the race detector multiplies memory and time, so memory
// bounds are only logged and floods are made smaller.
const raceEnabled = true
