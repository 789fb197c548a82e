//! Process hardening at start: no core dumps, so a crash cannot write secrets to disk.

/// Sets `RLIMIT_CORE` to 0 and, on Linux, marks the process non-dumpable (`PR_SET_DUMPABLE`,
/// which also keeps other users' debuggers and `/proc/PID/mem` readers out). Failures are
/// logged, not fatal: a sandbox may forbid them, and the tool still works.
pub fn disable_core_dumps() {
    use rustix::process::{Resource, Rlimit, setrlimit};
    if let Err(e) = setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    ) {
        tracing::debug!("cannot set RLIMIT_CORE to 0: {e}");
    }
    #[cfg(target_os = "linux")]
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        tracing::debug!("cannot clear the dumpable flag: {e}");
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn core_limit_is_zero_after_hardening() {
        super::disable_core_dumps();
        let limit = rustix::process::getrlimit(rustix::process::Resource::Core);
        assert_eq!(limit.current, Some(0));
        assert_eq!(
            rustix::process::dumpable_behavior().unwrap(),
            rustix::process::DumpableBehavior::NotDumpable
        );
    }
}
