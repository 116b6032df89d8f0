// Command fencing-postgres shows the fencing pattern on a real database: a
// lock from redislock guards a read-modify-write of a PostgreSQL row, and
// every write carries the hold's fencing token, which the UPDATE checks
// against the last one the row accepted. A holder that stalled past its
// lease and lost the lock to a newer holder is refused by the database,
// whatever it believes.
//
//	REDIS_ADDR=127.0.0.1:6379 DATABASE_URL=postgres://postgres@127.0.0.1:5432/test go run .
//
// Both variables default to the values above.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/redislock/redislock"
)

// ErrStale means the database refused a write: a holder with a newer token
// has written since.
var ErrStale = errors.New("refused: a newer lock holder has written")

// An Accounts is a table of balances, each row with the fencing token of
// its last write.
type Accounts struct {
	db    *pgxpool.Pool
	table string // a quoted identifier
}

// OpenAccounts creates the table if it does not exist.
func OpenAccounts(ctx context.Context, db *pgxpool.Pool, table string) (*Accounts, error) {
	a := &Accounts{db: db, table: `"` + table + `"`}
	_, err := db.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+a.table+` (
		id      text PRIMARY KEY,
		balance bigint NOT NULL,
		fence   bigint NOT NULL DEFAULT 0)`)
	return a, err
}

// Open creates account id with balance 0 if it does not exist.
func (a *Accounts) Open(ctx context.Context, id string) error {
	_, err := a.db.Exec(ctx, `INSERT INTO `+a.table+` (id, balance) VALUES ($1, 0) ON CONFLICT (id) DO NOTHING`, id)
	return err
}

// Balance returns the balance of account id and the token of its last write.
func (a *Accounts) Balance(ctx context.Context, id string) (balance, fence int64, err error) {
	err = a.db.QueryRow(ctx, `SELECT balance, fence FROM `+a.table+` WHERE id = $1`, id).Scan(&balance, &fence)
	return balance, fence, err
}

// Write sets the balance of account id, fenced by token: the row accepts it
// only if token is above the token of its last write, and returns ErrStale
// otherwise. The check and the write are one statement, so no other write
// can come between them.
func (a *Accounts) Write(ctx context.Context, id string, balance, token int64) error {
	tag, err := a.db.Exec(ctx, `UPDATE `+a.table+` SET balance = $1, fence = $2 WHERE id = $3 AND fence < $2`, balance, token, id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ErrStale
	}
	return nil
}

// Deposit adds amount to account id under lock: it reads the balance and
// writes it back with the hold's token.
func Deposit(ctx context.Context, lock *redislock.Lock, a *Accounts, id string, amount int64) error {
	return lock.WithLock(ctx, func(ctx context.Context) error {
		balance, _, err := a.Balance(ctx, id)
		if err != nil {
			return err
		}
		return a.Write(ctx, id, balance+amount, lock.Token())
	})
}

func main() {
	log.SetFlags(0)
	if err := run(context.Background()); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context) error {
	rc := redis.NewClient(&redis.Options{Addr: env("REDIS_ADDR", "127.0.0.1:6379")})
	defer rc.Close()
	db, err := pgxpool.New(ctx, env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"))
	if err != nil {
		return err
	}
	defer db.Close()
	accounts, err := OpenAccounts(ctx, db, "fencing_example_accounts")
	if err != nil {
		return err
	}
	const id = "alice"
	if err := accounts.Open(ctx, id); err != nil {
		return err
	}
	lock, err := redislock.New(rc, "account:"+id, redislock.WithTTL(5*time.Second))
	if err != nil {
		return err
	}
	for range 3 {
		if err := Deposit(ctx, lock, accounts, id, 10); err != nil {
			return err
		}
	}
	balance, fence, err := accounts.Balance(ctx, id)
	if err != nil {
		return err
	}
	fmt.Printf("account %s: balance %d, last written with fencing token %d\n", id, balance, fence)
	return nil
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
