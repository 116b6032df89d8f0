// Package faketb runs a test helper with a testing.TB that records Fatal
// and Skip instead of ending the test, so that a test can check how the
// helper fails or skips.
package faketb

import (
	"fmt"
	"runtime"
	"testing"
)

// Result tells how the function given to [Run] ended.
type Result struct {
	Failed  bool   // through Fatal or Fatalf
	Skipped bool   // through Skip or Skipf
	Msg     string // the message of that call
}

// Run runs fn on a goroutine of its own with a testing.TB that records
// Fatal, Skip and their formatted variants, ending fn with runtime.Goexit,
// instead of reporting them, and passes everything else to t. It blocks
// until fn has returned or ended, and leaves no goroutine behind.
func Run(t testing.TB, fn func(testing.TB)) Result {
	f := &fake{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f.res
}

type fake struct {
	testing.TB
	res Result // read by Run once fn's goroutine has ended
}

func (f *fake) Helper() {}

func (f *fake) Fatal(args ...any) {
	f.res = Result{Failed: true, Msg: fmt.Sprint(args...)}
	runtime.Goexit()
}

func (f *fake) Fatalf(format string, args ...any) { f.Fatal(fmt.Sprintf(format, args...)) }

func (f *fake) Skip(args ...any) {
	f.res = Result{Skipped: true, Msg: fmt.Sprint(args...)}
	runtime.Goexit()
}

func (f *fake) Skipf(format string, args ...any) { f.Skip(fmt.Sprintf(format, args...)) }
