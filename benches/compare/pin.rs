//! CPU pinning for the scaling scenarios, so that T threads really get T cores of their own:
//! in one process, cores [0, T); between two processes, the server [0, T) and the client
//! [T, 2T). Where the machine has too few cores for that, nothing is pinned and the result
//! says so (`pinned: false`).

/// The cores of this machine (online CPUs, whatever this process's own affinity: a client
/// process inherits its parent's pinning).
pub fn cores() -> usize {
    // SAFETY: sysconf only reads a system setting.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).max(1)
}

/// Pins the calling thread, and every thread it starts from now on, to cores
/// [first, first + n). False if the machine lacks them or the call failed.
pub fn pin(first: usize, n: usize) -> bool {
    if first + n > cores() {
        return false;
    }
    // SAFETY: cpu_set_t is plain data, filled by the libc macros and read by the call.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in first..first + n {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// Pins this process's side of scaling scenario `name` with `threads` threads per process
/// (`client`: the client process of a cross-process run). Other scenarios are left alone.
pub fn for_scenario(name: &str, threads: usize, client: bool) -> bool {
    if !name.starts_with("scale_") {
        return false;
    }
    if !name.ends_with("_xproc") {
        return pin(0, threads);
    }
    if 2 * threads > cores() {
        return false;
    }
    pin(if client { threads } else { 0 }, threads)
}
