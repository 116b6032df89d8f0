package faketb_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"go.uber.org/goleak"

	"github.com/redislock/redislock/internal/faketb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   func(testing.TB)
		want faketb.Result
	}{
		{"return", func(testing.TB) {}, faketb.Result{}},
		{"Fatal", func(tb testing.TB) { tb.Fatal("a", 1) }, faketb.Result{Failed: true, Msg: "a1"}},
		{"Fatalf", func(tb testing.TB) { tb.Fatalf("%s-%d", "a", 1) }, faketb.Result{Failed: true, Msg: "a-1"}},
		{"Skip", func(tb testing.TB) { tb.Skip("s") }, faketb.Result{Skipped: true, Msg: "s"}},
		{"Skipf", func(tb testing.TB) { tb.Skipf("s%d", 2) }, faketb.Result{Skipped: true, Msg: "s2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ended := false
			got := faketb.Run(t, func(tb testing.TB) {
				tc.fn(tb)
				ended = true
			})
			assert.Equal(t, tc.want, got)
			assert.Equal(t, !got.Failed && !got.Skipped, ended, "Fatal and Skip must end fn")
		})
	}
}
