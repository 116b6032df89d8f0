//go:build unix

package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// defaultURL is the server used without --url and $REDIS_URL.
const defaultURL = "redis://127.0.0.1:6379/0"

// connFlags are the connection flags every command takes.
type connFlags struct {
	url      string
	urlSet   bool
	cluster  string
	sentinel string
	master   string
}

func (c *connFlags) register(fs *flag.FlagSet) {
	c.url = os.Getenv("REDIS_URL")
	if c.url == "" {
		c.url = defaultURL
	}
	fs.Func("url", "Redis `URL` (default $REDIS_URL, else "+defaultURL+")", func(s string) error {
		c.url, c.urlSet = s, true
		return nil
	})
	fs.StringVar(&c.cluster, "cluster", "", "Redis Cluster node `ADDR,...`")
	fs.StringVar(&c.sentinel, "sentinel", "", "Sentinel `ADDR,...` (with --master)")
	fs.StringVar(&c.master, "master", "", "Sentinel master `NAME`")
}

// client returns the client the flags describe. It makes no request.
func (c *connFlags) client() (redis.UniversalClient, error) {
	if c.cluster != "" && c.sentinel != "" {
		return nil, usagef("--cluster and --sentinel exclude each other")
	}
	if (c.sentinel == "") != (c.master == "") {
		return nil, usagef("--sentinel and --master go together")
	}
	u, err := redis.ParseURL(c.url)
	if err != nil {
		return nil, usagef("--url: %v", err)
	}
	switch {
	case c.cluster != "":
		addrs, err := addrList("--cluster", c.cluster)
		if err != nil {
			return nil, err
		}
		// ContextTimeoutEnabled everywhere: --wait and the release's bound
		// must bound the socket I/O too, also when Redis stops answering.
		o := &redis.ClusterOptions{Addrs: addrs, ContextTimeoutEnabled: true}
		if c.urlSet {
			o.Username, o.Password, o.TLSConfig = u.Username, u.Password, cloneTLS(u.TLSConfig)
		}
		return redis.NewClusterClient(o), nil
	case c.sentinel != "":
		addrs, err := addrList("--sentinel", c.sentinel)
		if err != nil {
			return nil, err
		}
		o := &redis.FailoverOptions{MasterName: c.master, SentinelAddrs: addrs, ContextTimeoutEnabled: true}
		if c.urlSet {
			o.Username, o.Password, o.DB, o.TLSConfig = u.Username, u.Password, u.DB, cloneTLS(u.TLSConfig)
		}
		return redis.NewFailoverClient(o), nil
	}
	u.ContextTimeoutEnabled = true
	return redis.NewClient(u), nil
}

// cloneTLS drops the server name ParseURL took from the URL's host, which
// is not the host the cluster or Sentinel client connects to.
func cloneTLS(c *tls.Config) *tls.Config {
	if c == nil {
		return nil
	}
	c = c.Clone()
	c.ServerName = ""
	return c
}

func addrList(flagName, s string) ([]string, error) {
	var addrs []string
	for a := range strings.SplitSeq(s, ",") {
		if a = strings.TrimSpace(a); a == "" {
			return nil, usagef("%s %q: empty address", flagName, s)
		}
		addrs = append(addrs, a)
	}
	return addrs, nil
}

// durationFlag is a duration flag that records whether it was given. It
// takes Go durations ("1m30s") and, like flock, plain seconds ("5", "0.5").
type durationFlag struct {
	d   time.Duration
	set bool
}

func (f *durationFlag) String() string {
	if f == nil || !f.set {
		return ""
	}
	return f.d.String()
}

func (f *durationFlag) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		secs, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || secs != secs || secs > 1e9 || secs < -1e9 {
			return errors.New("not a duration (like 10s, 1m30s) or a number of seconds")
		}
		d = time.Duration(secs * float64(time.Second))
	}
	if d < 0 {
		return errors.New("negative")
	}
	f.d, f.set = d, true
	return nil
}

// parseFlags parses args with fs. It returns flag.ErrHelp after printing
// the help for -h, and a usageError for anything else that is wrong.
func parseFlags(fs *flag.FlagSet, args []string, synopsis string, stdout io.Writer) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "Usage: %s\n\nFlags:\n", synopsis)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fmt.Fprint(stdout, "\nFlags take one dash or two. Run redislock --help for the exit codes.\n")
		return err
	}
	if err != nil {
		return usageError{err}
	}
	return nil
}
