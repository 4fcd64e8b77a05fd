package testdb

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ForExample returns a pool, with the product's connection settings, on a
// fresh migrated database for a runnable example (func ExampleX has no
// *testing.T), and a function that closes it and drops the database. It
// panics when TEST_DATABASE_URL is unset or the database cannot be made: an
// example that cannot run must not pass.
func ForExample() (*pgxpool.Pool, func()) {
	tb := &exampleTB{}
	pool := Pool(tb, URL(tb))
	return pool, tb.cleanup
}

// exampleTB is the part of testing.TB that pgtestdb uses. The embedded
// interface is nil: a method pgtestdb does not use would panic, loudly.
type exampleTB struct {
	testing.TB
	mu       sync.Mutex
	cleanups []func()
}

func (*exampleTB) Helper()                      {}
func (*exampleTB) Name() string                 { return "Example" }
func (*exampleTB) Failed() bool                 { return false }
func (*exampleTB) Log(...any)                   {}
func (*exampleTB) Logf(string, ...any)          {}
func (*exampleTB) Fatal(args ...any)            { panic(fmt.Sprint(args...)) }
func (*exampleTB) Fatalf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
func (*exampleTB) Errorf(f string, args ...any) { panic(fmt.Sprintf(f, args...)) }
func (*exampleTB) Setenv(key, value string)     { _ = os.Setenv(key, value) }
func (tb *exampleTB) Cleanup(f func()) {
	tb.mu.Lock()
	tb.cleanups = append(tb.cleanups, f)
	tb.mu.Unlock()
}
func (tb *exampleTB) cleanup() {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	for i := len(tb.cleanups) - 1; i >= 0; i-- {
		tb.cleanups[i]()
	}
}
