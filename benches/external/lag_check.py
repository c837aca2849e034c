"""The outbound lag check of issue 11, from outside: `hookgate serve` on a fresh SQLite file, one
subscription (of a second key, so nothing is an echo) to nginx answering 200, and `wrk -t2 -c64`
sending signed `vendor.created` for SECS seconds (default 10) while a probe create goes out every
100 ms on a connection of its own. Prints intake/s, deliveries/s during the load and their ratio,
and the probes' lag (send to arrival at nginx) p50, p99 and max.

    cargo build --release && python3 benches/external/lag_check.py [path/to/hookgate]

Needs Debian's `wrk` and `nginx` (`apt-get install wrk nginx-light`). Everything it makes lives in
a temporary directory; the ports are 18080 (gateway) and 18081 (nginx).
"""

import hashlib
import hmac
import http.client
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BIN = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "../../target/release/hookgate")
SECS = int(os.environ.get("SECS", "10"))
GATEWAY, RECEIVER = 18080, 18081
REQUESTS = 250_000  # more than wrk sends in SECS seconds; each is used once
PROBE_EVERY = 0.1


def vendor(name):
    return json.dumps(
        {
            "event_type": "vendor.created",
            "timestamp": "2025-01-15T08:00:00Z",
            "source": "lag-check",
            "data": {"vendor_name": name, "type": "subcontractor", "city": "Chicago", "state": "IL"},
        },
        separators=(",", ":"),
    )


def sign(secret, body):
    ts = str(int(time.time()))
    return ts, hmac.new(secret.encode(), f"{ts}.{body}".encode(), hashlib.sha256).hexdigest()


def gateway_env(work):
    """The gateway's settings: its file in `work`, the receiver's local http URL allowed."""
    return dict(
        HOOKGATE_DATABASE=os.path.join(work, "hookgate.db"),
        HOOKGATE_LISTEN=f"127.0.0.1:{GATEWAY}",
        HOOKGATE_ALLOW_HTTP_URLS="true",
        HOOKGATE_ALLOW_PRIVATE_URLS="true",
        HOOKGATE_INBOUND_PER_MINUTE="100000000",
        HOOKGATE_INBOUND_PER_HOUR="1000000000",
        HOOKGATE_LOG_FORMAT="json",
    )


def start(work):
    with open(os.path.join(HERE, "nginx.conf")) as f:
        conf = f.read().replace("@WORK@", work).replace("@PORT@", str(RECEIVER))
    with open(os.path.join(work, "nginx.conf"), "w") as f:
        f.write(conf)
    os.makedirs(os.path.join(work, "body"))
    nginx = subprocess.Popen(["nginx", "-c", os.path.join(work, "nginx.conf"), "-g", "daemon off;"])
    env = dict(os.environ, **gateway_env(work))
    log_path = os.path.join(work, "serve.log")
    serve = subprocess.Popen([BIN, "serve"], env=env, stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    for _ in range(200):
        time.sleep(0.1)
        text = open(log_path).read()
        if "api_token" in text and "listening" in text:
            break
    else:
        raise SystemExit(f"the gateway did not start:\n{text}")
    key = re.search(r"key_id:\s+(\S+)", text).group(1)
    secret = re.search(r"secret:\s+(\S+)", text).group(1)
    created = subprocess.run(
        [BIN, "keys", "create", "--company", "dev", "--name", "subscriber", "--json"],
        env=env, capture_output=True, text=True, check=True,
    )
    token = json.loads(created.stdout)["api_token"]
    conn = http.client.HTTPConnection("127.0.0.1", GATEWAY)
    subscription = {"name": "lag", "url": f"http://127.0.0.1:{RECEIVER}/hook", "events": ["vendor.created"]}
    conn.request("POST", "/api/v1/webhooks", json.dumps(subscription),
                 {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    answer = conn.getresponse()
    if answer.status != 201:
        raise SystemExit(f"creating the subscription: HTTP {answer.status} {answer.read()!r}")
    return nginx, serve, key, secret


def shut_down(work, gateway, nginx):
    """Stops the gateway and nginx (either may be `None`) and removes `work`."""
    for process, sig in ((gateway, signal.SIGTERM), (nginx, signal.SIGQUIT)):
        if process is not None and process.poll() is None:
            process.send_signal(sig)
            process.wait(timeout=30)
    shutil.rmtree(work, ignore_errors=True)


def probe(key, secret, stop, sent):
    """A vendor.created every PROBE_EVERY until `stop`; `sent` gets (record_id, send time)."""
    conn = http.client.HTTPConnection("127.0.0.1", GATEWAY)
    n = 0
    while not stop.is_set():
        body = vendor(f"Lag Probe {n}")
        ts, sig = sign(secret, body)
        at = time.time()
        conn.request("POST", "/webhooks/inbound", body, {
            "X-API-Key": key, "Content-Type": "application/json",
            "X-Webhook-Timestamp": ts, "X-Webhook-Signature": f"sha256={sig}"})
        answer = conn.getresponse()
        reply = json.loads(answer.read())
        if answer.status == 200:
            sent.append((reply["record_id"], at))
        n += 1
        time.sleep(max(0.0, PROBE_EVERY - (time.time() - at)))


def main():
    work = tempfile.mkdtemp(prefix="hookgate-lag-")
    nginx = serve = None
    try:
        nginx, serve, key, secret = start(work)
        requests = os.path.join(work, "requests.tsv")
        with open(requests, "w") as f:
            for n in range(REQUESTS):
                body = vendor(f"Lag Vendor {n}")
                ts, sig = sign(secret, body)
                f.write(f"{key}\t{ts}\t{sig}\t{body}\n")
        stop, probes = threading.Event(), []
        prober = threading.Thread(target=probe, args=(key, secret, stop, probes))
        prober.start()
        run = subprocess.run(
            ["wrk", "-t2", "-c64", f"-d{SECS}s", "-s", os.path.join(HERE, "wrk.lua"),
             f"http://127.0.0.1:{GATEWAY}", "--", requests],
            capture_output=True, text=True,
        )
        stop.set()
        prober.join()
        print(run.stdout)
        # wrk's own count of its duration and requests.
        secs = float(re.search(r"requests in ([0-9.]+)s", run.stdout).group(1))
        total, failed = map(int, re.search(r"LAG-CHECK requests=(\d+) non2xx=(\d+)", run.stdout).groups())
        time.sleep(8)  # the backlog drains; nginx writes its log every second
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)

        arrivals, times = {}, []
        with open(os.path.join(work, "access.log")) as log:
            for line in log:
                at, webhook_id = line.split()
                times.append(float(at))
                arrivals.setdefault(webhook_id, float(at))
        # A probe's delivery carries its outbound event's id (`webhook-id`), found by record.
        db = sqlite3.connect(os.path.join(work, "hookgate.db"))
        probe_records = [record for record, _ in probes]
        marks = ",".join("?" * len(probe_records))
        outbound_ids = dict(db.execute(
            "SELECT record_id, event_id FROM events WHERE event_type = 'vendor.created' AND record_id IN (%s)"
            % marks, probe_records).fetchall())
        # The load's own window: from wrk's first create to its last, as the gateway stored them.
        # wrk's creates span more than the duration it reports (11.3 s against 10.05 s on one
        # run), so a window of that duration counted back from its exit leaves part of the load's
        # deliveries out; both rates are taken over the same window.
        first, last = db.execute(
            "SELECT MIN(created_at), MAX(created_at) FROM events WHERE event_type = 'vendor.created' "
            "AND record_id NOT IN (%s)" % marks, probe_records).fetchone()
        first, last = first / 1000, last / 1000
        during = sum(1 for at in times if first <= at <= last)
        now = time.time()
        lags = sorted((arrivals.get(outbound_ids.get(record), now) - at) * 1000 for record, at in probes)
        intake, deliveries = (total - failed) / secs, during / (last - first)
        intake_in_window = (total - failed) / (last - first)
        delivered = len(times)

        def pct(p):
            return lags[min(len(lags) - 1, int(p * len(lags)))]

        print(f"intake {intake:.0f}/s by wrk's count ({failed} not 200), {intake_in_window:.0f}/s over "
              f"the {last - first:.1f} s from its first create to its last; deliveries in that window "
              f"{deliveries:.0f}/s (ratio {deliveries / intake_in_window:.2f}), {delivered} delivered in all; "
              f"{len(lags)} probes, lag p50 {pct(0.5):.0f} ms, p99 {pct(0.99):.0f} ms, max {lags[-1]:.0f} ms")
    finally:
        shut_down(work, serve, nginx)


if __name__ == "__main__":
    main()
