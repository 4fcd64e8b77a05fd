package bench

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// clockTicks is Linux's USER_HZ, the unit of /proc/PID/stat's CPU times.
const clockTicks = 100

// cpuMeter reads the CPU time of this process and of the PostgreSQL server
// behind a pool, so a drain can say where its time went. The server's is
// only known when it runs on this machine (as `make bench`'s throwaway
// server does); otherwise serverOK is false.
type cpuMeter struct {
	postmaster int
}

// newCPUMeter finds the server's postmaster through one of pool's backends.
func newCPUMeter(ctx context.Context, pool *pgxpool.Pool) *cpuMeter {
	var backend int
	if err := pool.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
		return &cpuMeter{}
	}
	ppid, err := procStatusInt(backend, "PPid:")
	if err != nil {
		return &cpuMeter{}
	}
	return &cpuMeter{postmaster: int(ppid)}
}

// cpuSample is the CPU used so far.
type cpuSample struct {
	process  time.Duration
	server   time.Duration
	serverOK bool
}

func (m *cpuMeter) sample() cpuSample {
	var s cpuSample
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.process = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	if m.postmaster > 0 {
		s.server, s.serverOK = serverTicks(m.postmaster)
	}
	return s
}

// serverTicks sums the CPU time of the postmaster, its live children (the
// backends and background processes) and its children that have exited.
func serverTicks(postmaster int) (time.Duration, bool) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, false
	}
	var ticks int64
	found := false
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fields, ok := procStat(pid)
		if !ok {
			continue
		}
		ppid, _ := strconv.Atoi(fields[1])
		switch {
		case pid == postmaster:
			found = true
			// utime, stime, cutime, cstime: its own and its reaped children's.
			for _, f := range fields[11:15] {
				n, _ := strconv.ParseInt(f, 10, 64)
				ticks += n
			}
		case ppid == postmaster:
			for _, f := range fields[11:13] {
				n, _ := strconv.ParseInt(f, 10, 64)
				ticks += n
			}
		}
	}
	return time.Duration(ticks) * time.Second / clockTicks, found
}

// procStat returns /proc/PID/stat's fields after the command name: field 0
// is the state, 1 the parent pid, 11 and 12 utime and stime, 13 and 14
// cutime and cstime.
func procStat(pid int) ([]string, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil, false
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 15 {
		return nil, false
	}
	return fields, true
}
