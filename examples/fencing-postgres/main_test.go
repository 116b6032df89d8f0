package main

import (
	"context"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/redislock/redislock"
	"github.com/redislock/redislock/internal/redistest"
)

// envRequire turns the skip for a PostgreSQL that does not answer into a
// failure.
const envRequire = "REDISLOCK_REQUIRE_POSTGRES"

// database returns a pool on $DATABASE_URL (default: the local test
// database) and a table name unique to t, dropped by t.Cleanup. It skips t
// when PostgreSQL does not answer, or fails it if $REDISLOCK_REQUIRE_POSTGRES
// is true.
func database(t *testing.T) (*pgxpool.Pool, string) {
	t.Helper()
	url := env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	db, err := pgxpool.New(ctx, url)
	if err == nil {
		err = db.Ping(ctx)
	}
	if err != nil {
		if db != nil {
			db.Close()
		}
		msg := "no PostgreSQL answers at " + url + " (set DATABASE_URL; " + envRequire + "=1 makes this a failure): " + err.Error()
		if required, _ := strconv.ParseBool(os.Getenv(envRequire)); required {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	table := "fencing_test_" + strconv.Itoa(os.Getpid()) + "_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	t.Cleanup(func() {
		_, _ = db.Exec(context.Background(), `DROP TABLE IF EXISTS "`+table+`"`)
		db.Close()
	})
	return db, table
}

func TestMain(m *testing.M) { os.Exit(redistest.Main(m)) }

func TestDeposit(t *testing.T) {
	db, table := database(t)
	ctx := context.Background()
	accounts, err := OpenAccounts(ctx, db, table)
	if err != nil {
		t.Fatal(err)
	}
	if err := accounts.Open(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	lock, err := redislock.New(redistest.Client(t), redistest.Key(t))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := Deposit(ctx, lock, accounts, "a", 10); err != nil {
			t.Fatal(err)
		}
	}
	if balance, fence, err := accounts.Balance(ctx, "a"); err != nil || balance != 30 || fence <= 0 {
		t.Fatalf("balance %d, fence %d, %v; want 30, > 0, nil", balance, fence, err)
	}
}

// The point of fencing: holder A stalls past its lease (no heartbeat, a
// short TTL, its goroutine kept asleep), holder B acquires and writes, then
// A wakes and writes with its older token. The database refuses A's write
// and keeps B's, though A's read-modify-write ran "under the lock".
func TestStaleHolderRefused(t *testing.T) {
	db, table := database(t)
	ctx := context.Background()
	accounts, err := OpenAccounts(ctx, db, table)
	if err != nil {
		t.Fatal(err)
	}
	const id = "acct"
	if err := accounts.Open(ctx, id); err != nil {
		t.Fatal(err)
	}
	rc := redistest.Start(t).Client(t)
	name := redistest.Key(t)
	const ttl = 200 * time.Millisecond
	a, err := redislock.New(rc, name, redislock.WithoutHeartbeat(), redislock.WithTTL(ttl))
	if err != nil {
		t.Fatal(err)
	}
	b, err := redislock.New(rc, name)
	if err != nil {
		t.Fatal(err)
	}

	// A reads under the lock, then stalls until told to go on.
	stalled, resume := make(chan struct{}), make(chan struct{})
	aDone := make(chan error, 1)
	var aToken int64
	go func() {
		aDone <- a.WithLock(ctx, func(ctx context.Context) error {
			aToken = a.Token()
			balance, _, err := accounts.Balance(ctx, id)
			if err != nil {
				return err
			}
			close(stalled)
			<-resume // a GC pause, a suspended VM: the lease runs out meanwhile
			// A stalled process does not look at its context before it
			// writes; a detached context makes the write go through.
			return accounts.Write(context.WithoutCancel(ctx), id, balance+100, aToken)
		})
	}()
	<-stalled

	// B gets the lock once A's lease has run out on the server, and writes.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, err := b.TryAcquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("B never got the lock")
		}
		time.Sleep(5 * time.Millisecond)
	}
	bToken := b.Token()
	if bToken <= aToken {
		t.Fatalf("B's token %d is not above A's %d", bToken, aToken)
	}
	if err := accounts.Write(ctx, id, 7, bToken); err != nil {
		t.Fatalf("B's write: %v", err)
	}

	close(resume)
	err = <-aDone
	if !errors.Is(err, ErrStale) {
		t.Fatalf("A's write after B's: %v, want ErrStale", err)
	}
	t.Logf("fencing: A's WithLock returned: %v", err)
	balance, fence, err := accounts.Balance(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if balance != 7 || fence != bToken {
		t.Fatalf("row has balance %d, fence %d; want B's write: 7, %d", balance, fence, bToken)
	}
	t.Logf("fencing: A (token %d) was refused after B (token %d) wrote; the row kept balance %d", aToken, bToken, balance)
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
}
