package waf

import "runtime"

// engineSlots bounds the inspections running in the engine at once to the
// CPUs the process may use; the others wait their turn. An inspection is
// CPU work (a benign 16 KiB JSON POST costs the CRS about 50 ms here), and
// a transaction holds much memory while it runs: 50 at once on one CPU
// took 1.5 times the CPU per request (the garbage collector scanning all of
// them) and 1.1 GB of RSS; one at a time, 340 MB. A slot is held only while
// the engine works, never while a body is read from the network, so a slow
// client cannot keep others waiting.
var engineSlots = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))

func enterEngine() { engineSlots <- struct{}{} }
func leaveEngine() { <-engineSlots }
