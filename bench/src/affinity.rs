//! CPU pinning and the open-file limit. The server under test runs on [`SERVER_CPU`] and the load
//! generator on [`GENERATOR_CPU`], so every target gets exactly one core and results compare per core.

use anyhow::{Context as _, bail};
use std::io;

/// The core the server under test is pinned to.
pub const SERVER_CPU: usize = 0;
/// The core the load generator (this process) is pinned to.
pub const GENERATOR_CPU: usize = 1;

/// Pins the calling thread, and every thread or process it creates afterwards, to `cpu`.
/// Async-signal-safe (one system call), so it may run between `fork` and `exec`.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    pin_current_thread_to(cpu, 1)
}

/// Pins the calling thread, and every thread or process it creates afterwards, to the `count` CPUs
/// from `first`. Async-signal-safe, as [`pin_current_thread`].
pub fn pin_current_thread_to(first: usize, count: usize) -> io::Result<()> {
    // SAFETY: `cpu_set_t` is a plain bit array for which all-zero is the valid empty set; `CPU_SET`
    // writes inside it (`cpu` is checked against its capacity first) and `sched_setaffinity` only reads
    // `size_of::<cpu_set_t>()` bytes from the pointer we pass.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if first + count > 8 * std::mem::size_of::<libc::cpu_set_t>() {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        for cpu in first..first + count {
            libc::CPU_SET(cpu, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Asks the kernel to SIGKILL the calling process when its parent thread exits, so a server started by
/// the harness never outlives it, not even when the harness itself is killed. Async-signal-safe.
pub fn die_with_parent() -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number as its only argument and touches no memory.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Number of CPUs this machine has online.
pub fn online_cpus() -> usize {
    // SAFETY: sysconf reads a system constant.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).max(1)
}

/// Pins this process to the CPU after the server's `server_cpus` ([`GENERATOR_CPU`] for one), or leaves
/// it on every CPU when the server has them all; call before any thread is started so that all inherit it.
pub fn pin_generator(server_cpus: usize) -> anyhow::Result<()> {
    let cpus = online_cpus();
    if server_cpus > cpus {
        bail!("--server-cpus {server_cpus}: this machine has {cpus} CPUs");
    }
    if server_cpus == 1 && cpus <= GENERATOR_CPU {
        bail!("pinning needs at least {} CPUs, this machine has {cpus}; pass --no-pin", GENERATOR_CPU + 1);
    }
    if server_cpus == cpus {
        return Ok(());
    }
    pin_current_thread(server_cpus).context("pinning the load generator")
}

/// The soft limit on open files in force.
pub fn open_file_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes exactly one `rlimit` we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(lim.rlim_cur)
}

/// Raises the soft (and if needed the hard) limit on open files to at least `want`, as far as allowed.
/// Returns the soft limit now in force. Children started afterwards inherit it.
pub fn raise_nofile(want: u64) -> io::Result<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read or write exactly one `rlimit` we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(io::Error::last_os_error());
        }
        if lim.rlim_cur >= want {
            return Ok(lim.rlim_cur);
        }
        if lim.rlim_max < want {
            // Root may raise the hard limit (up to fs.nr_open); others keep theirs.
            let raised = libc::rlimit { rlim_cur: want, rlim_max: want };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return Ok(want);
            }
        }
        lim.rlim_cur = want.min(lim.rlim_max);
        if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(lim.rlim_cur)
}
