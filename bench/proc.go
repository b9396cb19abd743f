package bench

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is the unit of the CPU times in /proc/PID/stat (USER_HZ, 100
// on every Linux architecture Go supports).
const clockTick = 10 * time.Millisecond

// cpuTime returns the user plus system CPU time of process pid so far, of
// this process for pid 0, or -1 when it cannot be read.
func cpuTime(pid int) time.Duration {
	if pid == 0 {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			return -1
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	// After the name: state is field 3, utime field 14, stime field 15.
	if len(f) < 13 {
		return -1
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	return time.Duration(ut+st) * clockTick
}

// procMemory is the memory of a process as /proc/PID/status reports it, in MiB.
type procMemory struct {
	rss  float64 // VmRSS: resident set size
	hwm  float64 // VmHWM: peak resident set size
	anon float64 // RssAnon: private memory (heap, stacks, data)
	file float64 // RssFile: mapped file pages (the binary's code and read-only data)
}

// memory reads the memory of process pid.
func memory(pid int) (procMemory, error) {
	var m procMemory
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, err
	}
	defer f.Close()
	fields := map[string]*float64{"VmRSS:": &m.rss, "VmHWM:": &m.hwm, "RssAnon:": &m.anon, "RssFile:": &m.file}
	found := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Fields(sc.Text())
		if len(parts) < 2 {
			continue
		}
		dst, ok := fields[parts[0]]
		if !ok {
			continue
		}
		kb, err := strconv.ParseFloat(parts[1], 64)
		if err != nil {
			continue
		}
		*dst = round3(kb / 1024)
		found++
	}
	if err := sc.Err(); err != nil {
		return m, err
	}
	if found < len(fields) {
		return m, errors.New("VmRSS, VmHWM, RssAnon or RssFile missing in /proc status")
	}
	return m, nil
}

// loadAverage returns the 1-, 5- and 15-minute load averages, or nil.
func loadAverage() []float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return nil
	}
	out := make([]float64, 3)
	for i := range out {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return nil
		}
		out[i] = v
	}
	return out
}
