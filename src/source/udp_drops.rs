//! Datagrams the kernel dropped before logwarden could read them: a UDP socket's receive
//! buffer overflowing under a burst. They never reach the source's counters, so they are read
//! from the kernel's own count, the `drops` column of `/proc/net/udp` (and `udp6`) for the
//! socket's inode. Linux only; elsewhere the count is unknown and not reported.

use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;

/// The inode that names `socket` in `/proc/net/udp`, if the platform has one.
pub fn socket_inode(socket: &impl AsRawFd) -> Option<u64> {
    // A socket's fd links to `socket:[INODE]`; stat of the link's target is that inode.
    std::fs::metadata(format!("/proc/self/fd/{}", socket.as_raw_fd())).ok().map(|m| m.ino())
}

/// The kernel's count of datagrams dropped at the socket with `inode`, or `None` when no
/// socket table lists it.
pub fn kernel_drops(inode: u64) -> Option<u64> {
    ["/proc/net/udp", "/proc/net/udp6"].into_iter().find_map(|table| {
        let text = std::fs::read_to_string(table).ok()?;
        drops_in(&text, inode)
    })
}

/// The `drops` of the row for `inode` in a `/proc/net/udp`-format table.
fn drops_in(table: &str, inode: u64) -> Option<u64> {
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next()?.split_whitespace().collect();
    // The header names `tx_queue rx_queue` and `tr tm->when` as four columns where the rows
    // have two (`00000000:00000000`, `00:00000000`): locate columns from the row's end,
    // where `drops` is last and `inode` four before it, as the kernel prints them.
    if header.last() != Some(&"drops") {
        return None;
    }
    lines.find_map(|row| {
        let cols: Vec<&str> = row.split_whitespace().collect();
        let n = cols.len();
        if n < 5 || cols[n - 4].parse::<u64>().ok()? != inode {
            return None;
        }
        cols[n - 1].parse().ok()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_row_of_the_inode_gives_its_drops() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops            \n\
  170: 0100007F:0202 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 0          \n\
  171: 0100007F:A3B1 00000000:0000 07 00000000:00034000 00:00000000 00000000  1000        0 98765 2 0000000000000000 1234       \n";
        assert_eq!(drops_in(table, 98765), Some(1234));
        assert_eq!(drops_in(table, 4242), Some(0));
        assert_eq!(drops_in(table, 1), None);
        assert_eq!(drops_in("garbage\n1 2 3", 1), None);
        assert_eq!(drops_in("", 1), None);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_socket_nobody_reads_counts_the_kernels_drops() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // The kernel's floor for a receive buffer is a few KiB: a hundred 1 KiB datagrams
        // overflow it.
        socket2::SockRef::from(&socket).set_recv_buffer_size(4096).unwrap();
        let inode = socket_inode(&socket).unwrap();
        assert_eq!(kernel_drops(inode), Some(0));
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = socket.local_addr().unwrap();
        for _ in 0..200 {
            sender.send_to(&[b'x'; 1024], to).unwrap();
        }
        let dropped = kernel_drops(inode).unwrap();
        assert!(dropped > 100, "{dropped} of 200 dropped into a 4 KiB buffer");
        // The datagrams that fit are still there, and reading them does not undo the count.
        let mut buf = [0u8; 2048];
        socket.set_nonblocking(true).unwrap();
        let mut read = 0;
        while socket.recv_from(&mut buf).is_ok() {
            read += 1;
        }
        assert_eq!(read + dropped, 200);
        assert_eq!(kernel_drops(inode), Some(dropped));
    }
}
