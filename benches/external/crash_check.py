"""The delivery crash check of issue 11, from outside: `hookgate serve` on a fresh SQLite file
with one subscription to nginx (as in lag_check.py), `wrk -t2 -c64` sending signed
`vendor.created` for a few seconds, and `kill -9` of the gateway while deliveries are in flight.
The gateway then starts again on the same file. Every change it answered 200 must reach nginx,
with its event's `webhook-id`, within the delivery timeout plus a few seconds of the restart;
changes delivered twice (sent before the kill, not yet recorded) keep their id.

    cargo build --release && python3 benches/external/crash_check.py [path/to/hookgate]

Prints how many changes were answered, delivered, delivered twice and missing, and how long
after the restart the last one arrived; exits 1 if any is missing.
"""

import collections
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

import lag_check
from lag_check import BIN, GATEWAY, HERE, sign, vendor

LOAD_SECS = 3
# How long after the restart everything must have arrived: the delivery timeout (the default
# 30 s bounds a send that was in flight) and a few seconds.
WAIT_SECS = 40


def serve(env, work, log_name):
    log_path = os.path.join(work, log_name)
    process = subprocess.Popen([BIN, "serve"], env=env, stdout=open(log_path, "w"),
                               stderr=subprocess.STDOUT)
    for _ in range(200):
        time.sleep(0.1)
        if "listening" in open(log_path).read():
            return process
    raise SystemExit(f"the gateway did not start:\n{open(log_path).read()}")


def arrivals(work):
    ids = []
    path = os.path.join(work, "access.log")
    if os.path.exists(path):
        with open(path) as log:
            ids = [line.split()[1] for line in log if len(line.split()) == 2]
    return ids


def main():
    work = tempfile.mkdtemp(prefix="hookgate-crash-")
    nginx = gateway = None
    try:
        nginx, gateway, key, secret = lag_check.start(work)
        env = dict(os.environ, **lag_check.gateway_env(work))
        requests = os.path.join(work, "requests.tsv")
        with open(requests, "w") as f:
            for n in range(60_000):
                body = vendor(f"Crash Vendor {n}")
                ts, sig = sign(secret, body)
                f.write(f"{key}\t{ts}\t{sig}\t{body}\n")
        load = subprocess.Popen(
            ["wrk", "-t2", "-c64", f"-d{LOAD_SECS + 2}s", "-s", os.path.join(HERE, "wrk.lua"),
             f"http://127.0.0.1:{GATEWAY}", "--", requests],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        time.sleep(LOAD_SECS)
        gateway.send_signal(signal.SIGKILL)
        gateway.wait()
        killed_at = time.time()
        load.communicate()
        gateway = serve(env, work, "serve-again.log")
        restarted = time.time()

        db = sqlite3.connect(os.path.join(work, "hookgate.db"))
        expected = {row[0] for row in db.execute(
            "SELECT event_id FROM events WHERE event_type = 'vendor.created'")}
        before = len(set(arrivals(work)))
        deadline = restarted + WAIT_SECS
        while time.time() < deadline:
            time.sleep(1)  # nginx writes its log every second
            if expected <= set(arrivals(work)):
                break
        done_after = time.time() - restarted
        got = arrivals(work)
        delivered = set(got) & expected
        twice = sum(1 for count in collections.Counter(got).values() if count > 1)
        missing = expected - delivered
        print(f"killed {killed_at - restarted:+.1f} s from the restart; {len(expected)} changes stored, "
              f"{before} delivered before the restart, {len(delivered)} delivered in all, "
              f"{twice} delivered more than once (same webhook-id), {len(missing)} missing; "
              f"{'all' if not missing else 'not all'} arrived {done_after:.1f} s after the restart")
        if missing:
            sys.exit(1)
    finally:
        lag_check.shut_down(work, gateway, nginx)


if __name__ == "__main__":
    main()
