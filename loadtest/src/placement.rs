//! CPU placement: pinning the generator (and, in `compare`, each process it starts) to a set
//! of CPUs. On a machine whose vCPUs share cores, where a process runs changes its results,
//! so the report records the placement.

use std::{fmt, str::FromStr};

/// A set of CPUs, e.g. `0`, `0,1` or `0-3`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cpus(Vec<usize>);

impl Cpus {
    /// The CPUs, ascending.
    #[must_use]
    pub fn list(&self) -> &[usize] {
        &self.0
    }

    /// Pins the calling thread — and every thread and process it starts afterwards, which
    /// inherit its mask — to these CPUs.
    ///
    /// # Errors
    ///
    /// The kernel refused (a CPU that does not exist or is not allowed here).
    pub fn pin_current_thread(&self) -> std::io::Result<()> {
        #[cfg(target_os = "linux")]
        {
            let mut set = rustix::thread::CpuSet::new();
            for &c in &self.0 {
                if c >= rustix::thread::CpuSet::MAX_CPU {
                    return Err(std::io::Error::other(format!("CPU {c} is beyond this system's CPU set")));
                }
                set.set(c);
            }
            rustix::thread::sched_setaffinity(None, &set)
                .map_err(|e| std::io::Error::other(format!("cannot pin to CPUs {self}: {e}")))
        }
        #[cfg(not(target_os = "linux"))]
        {
            Err(std::io::Error::other("CPU pinning is supported on Linux only"))
        }
    }

    /// The CPUs the calling thread may run on now.
    ///
    /// # Errors
    ///
    /// The kernel refused to say.
    pub fn current() -> std::io::Result<Self> {
        #[cfg(target_os = "linux")]
        {
            let set = rustix::thread::sched_getaffinity(None).map_err(std::io::Error::from)?;
            Ok(Self((0..rustix::thread::CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect()))
        }
        #[cfg(not(target_os = "linux"))]
        {
            Err(std::io::Error::other("CPU affinity is supported on Linux only"))
        }
    }
}

impl FromStr for Cpus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("CPU list `{s}`: expected numbers and ranges like 0, 0,1 or 0-3");
        let mut cpus = Vec::new();
        for part in s.split(',').map(str::trim) {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            let (a, b): (usize, usize) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
            if a > b || b >= 1024 {
                return Err(bad());
            }
            cpus.extend(a..=b);
        }
        cpus.sort_unstable();
        cpus.dedup();
        Ok(Self(cpus))
    }
}

impl fmt::Display for Cpus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(usize::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse() {
        assert_eq!("0".parse::<Cpus>().unwrap().list(), [0]);
        assert_eq!("3,0-1, 1".parse::<Cpus>().unwrap().list(), [0, 1, 3]);
        assert_eq!("0-1".parse::<Cpus>().unwrap().to_string(), "0,1");
        for bad in ["", "a", "2-1", "0-5000", "1,,2"] {
            assert!(bad.parse::<Cpus>().is_err(), "{bad}");
        }
    }

    #[test]
    fn pinning_moves_the_thread_and_what_it_starts() {
        let here = Cpus::current().unwrap();
        let first = Cpus(vec![here.list()[0]]);
        std::thread::spawn(move || {
            first.pin_current_thread().unwrap();
            assert_eq!(Cpus::current().unwrap(), first);
            // A thread started now inherits the mask.
            let inner = std::thread::spawn(|| Cpus::current().unwrap()).join().unwrap();
            assert_eq!(inner, first);
        })
        .join()
        .unwrap();
        assert!("1023".parse::<Cpus>().unwrap().pin_current_thread().is_err() || here.list().contains(&1023));
    }
}
