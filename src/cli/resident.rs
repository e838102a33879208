//! Keeping a long-running node's resident set to the code it runs.
//!
//! Most of an idle node's memory is not data but code: pages of this executable and of libc
//! mapped from the page cache (5.2 MiB resident, of which under 0.5 MiB anonymous). Start-up
//! (argument parsing, the roles file, logging and runtime set-up, the handshake with the port
//! mapper) runs code that a running node never needs again, and on each page fault Linux maps
//! the neighbouring cached pages too (fault-around; `MADV_RANDOM` does not turn that off on
//! current kernels, we measured).
//!
//! So once the node is up it drops its executable mappings' pages from its page tables. They
//! stay in the page cache, shared by every process on the host; whatever the node runs next
//! maps back in on first use (a minor fault, no I/O). Only mappings that are never written
//! (`r-xp`) are dropped: relocated read-only data (`r--p` after RELRO) holds private copies
//! and must stay. An idle node goes from 5.2 to 3.3 MiB (`benches/dist_vs_beam.py`, idle
//! RSS). Linux only; on any error it does nothing.

/// Private file mappings of this process that are never written: `(start, len)`.
fn code_mappings() -> Vec<(usize, usize)> {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return Vec::new();
    };
    maps.lines().filter_map(parse_mapping).collect()
}

/// One line of `/proc/PID/maps`, when it is a private executable, read-only mapping of a file.
fn parse_mapping(line: &str) -> Option<(usize, usize)> {
    let mut fields = line.split_whitespace();
    let range = fields.next()?;
    let perms = fields.next()?;
    let path = fields.nth(3)?;
    if !path.starts_with('/') || perms != "r-xp" {
        return None;
    }
    let (start, end) = range.split_once('-')?;
    let start = usize::from_str_radix(start, 16).ok()?;
    let end = usize::from_str_radix(end, 16).ok()?;
    (end > start).then_some((start, end - start))
}

/// Drops the executable mappings' pages (call once start-up is over).
pub fn drop_startup_code() {
    for (start, len) in code_mappings() {
        let Some(ptr) = std::ptr::NonNull::new(start as *mut std::ffi::c_void) else {
            continue;
        };
        // SAFETY: the range is a whole mapping of this process, read from /proc/self/maps,
        // private, executable and not writable: its pages are the file's, never modified, and
        // are mapped back from the page cache on the next access.
        let _ =
            unsafe { nix::sys::mman::madvise(ptr, len, nix::sys::mman::MmapAdvise::MADV_DONTNEED) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_private_executable_file_mappings_are_picked() {
        assert_eq!(
            parse_mapping("55d0c0a00000-55d0c0b00000 r-xp 00001000 fd:01 123 /usr/bin/cluster"),
            Some((0x55d0c0a00000, 0x100000))
        );
        for other in [
            "7f00-8000 r--p 00000000 fd:01 9 /usr/lib/libc.so.6",
            "7f00-8000 rw-p 00000000 fd:01 9 /usr/lib/libc.so.6",
            "7f00-8000 r-xs 00000000 fd:01 9 /dev/shm/x",
            "7f00-8000 rw-p 00000000 00:00 0 [heap]",
            "7f00-8000 r-xp 00000000 00:00 0 [vdso]",
            "7f00-8000 r-xp 00000000 00:00 0",
            "zz-8000 r-xp 00000000 fd:01 9 /x",
            "",
        ] {
            assert_eq!(parse_mapping(other), None, "{other}");
        }
    }

    #[test]
    fn code_dropped_from_the_page_tables_runs_again() {
        assert!(!code_mappings().is_empty());
        drop_startup_code();
        // Everything this test runs next is mapped back in on first use.
        let v: Vec<u64> = (0..1000).map(|x| x * x).collect();
        assert_eq!(v.iter().sum::<u64>(), 332_833_500);
        assert!(!code_mappings().is_empty());
    }
}
