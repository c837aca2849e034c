//! The standard Prometheus process metrics (`process_*`), read from `/proc` at scrape time:
//! resident memory, CPU seconds, open and allowed file descriptors, start time. Elsewhere than
//! Linux they are left out.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::encode_const;

/// `/proc` counts CPU time in clock ticks; USER_HZ is 100 on every Linux platform we run on
/// (it is fixed by the kernel ABI, whatever the kernel's internal HZ).
const TICKS_PER_SECOND: f64 = 100.0;

/// What one scrape read.
#[derive(Debug, Default, PartialEq)]
struct Process {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<u64>,
    virtual_bytes: Option<u64>,
    start_time_seconds: Option<f64>,
    open_fds: Option<u64>,
    max_fds: Option<u64>,
}

/// The fields of `/proc/self/stat` after the command name (which may hold spaces and
/// parentheses, so the split is at the last `)`): index 0 is field 3, `state`.
fn stat_fields(stat: &str) -> Vec<&str> {
    stat.rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default()
}

/// Reads CPU time, virtual size and start time (as seconds since the epoch, given the boot
/// time `btime` from `/proc/stat`) from `/proc/self/stat`.
fn parse_stat(stat: &str, boot_time: Option<u64>, process: &mut Process) {
    let fields = stat_fields(stat);
    let number = |field: usize| fields.get(field - 3).and_then(|v| v.parse::<u64>().ok());
    if let (Some(user), Some(system)) = (number(14), number(15)) {
        process.cpu_seconds = Some((user + system) as f64 / TICKS_PER_SECOND);
    }
    process.virtual_bytes = number(23);
    if let (Some(start), Some(boot)) = (number(22), boot_time) {
        process.start_time_seconds = Some(boot as f64 + start as f64 / TICKS_PER_SECOND);
    }
}

/// `btime` of `/proc/stat`: when the machine booted, in seconds since the epoch.
fn parse_boot_time(stat: &str) -> Option<u64> {
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn parse_resident(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// The soft limit of `Max open files` in `/proc/self/limits`.
fn parse_max_fds(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn read() -> Process {
    let file = |path: &str| std::fs::read_to_string(path).ok();
    let mut process = Process::default();
    if let Some(stat) = file("/proc/self/stat") {
        let boot = file("/proc/stat").as_deref().and_then(parse_boot_time);
        parse_stat(&stat, boot, &mut process);
    }
    process.resident_bytes = file("/proc/self/status")
        .as_deref()
        .and_then(parse_resident);
    process.max_fds = file("/proc/self/limits").as_deref().and_then(parse_max_fds);
    process.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|dir| dir.count() as u64);
    process
}

/// The process metrics that could be read, at every scrape.
#[derive(Debug)]
pub(super) struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let p = read();
        if let Some(cpu) = p.cpu_seconds {
            let help = "User and system CPU time spent, in seconds.";
            encode_const(
                &mut encoder,
                "process_cpu_seconds",
                help,
                ConstCounter::new(cpu),
            )?;
        }
        let gauges: [(&str, &str, Option<f64>); 5] = [
            (
                "process_resident_memory_bytes",
                "Resident memory size, in bytes.",
                p.resident_bytes.map(|v| v as f64),
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size, in bytes.",
                p.virtual_bytes.map(|v| v as f64),
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since the epoch, in seconds.",
                p.start_time_seconds,
            ),
            (
                "process_open_fds",
                "Open file descriptors.",
                p.open_fds.map(|v| v as f64),
            ),
            (
                "process_max_fds",
                "Most file descriptors the process may open.",
                p.max_fds.map(|v| v as f64),
            ),
        ];
        for (name, help, value) in gauges {
            if let Some(value) = value {
                encode_const(&mut encoder, name, help, ConstGauge::new(value))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_split_after_the_command_name() {
        // A command name with spaces and parentheses; utime 250, stime 50, starttime 1000.
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 9 0 1000 123456789 2000 18446744073709551615";
        let mut p = Process::default();
        parse_stat(stat, Some(1_700_000_000), &mut p);
        assert_eq!(p.cpu_seconds, Some(3.0));
        assert_eq!(p.virtual_bytes, Some(123_456_789));
        assert_eq!(p.start_time_seconds, Some(1_700_000_010.0));
    }

    #[test]
    fn status_limits_and_boot_time() {
        assert_eq!(
            parse_resident("Name:\thookgate\nVmRSS:\t   20480 kB\nThreads: 9\n"),
            Some(20480 * 1024)
        );
        assert_eq!(
            parse_max_fds(
                "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 524288               files\n"
            ),
            Some(1024)
        );
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nbtime 1700000000\n"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_boot_time("cpu  1 2 3\n"), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_is_read() {
        let p = read();
        assert!(p.resident_bytes.unwrap() > 0);
        assert!(p.open_fds.unwrap() >= 3);
        assert!(p.max_fds.unwrap() >= p.open_fds.unwrap());
        let now = crate::clock::now_secs() as f64;
        let started = p.start_time_seconds.unwrap();
        assert!(
            started <= now + 1.0 && started > now - 86_400.0 * 365.0,
            "{started}"
        );
    }
}
