//! Synthetic, deterministic auth-log traffic (`logwarden generate`) for load tests, benchmarks
//! and demos: an sshd-heavy RFC 3164 mix like a host on the internet sees.

use std::io::Write;

/// A small deterministic PRNG (xorshift64*): the same seed gives the same log on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const HOSTS: &[&str] = &["web-1", "web-2", "db-1", "bastion", "ci-runner", "mail", "vpn", "lb-1"];
const USERS: &[&str] = &[
    "root", "admin", "test", "oracle", "ubuntu", "postgres", "git", "deploy", "user", "guest",
    "pi", "support", "ftpuser", "alice", "bob",
];
const MONTHS: &[&str] =
    &["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// Writes `lines` syslog lines generated from `seed` to `out`.
pub fn write_syslog(out: &mut impl Write, lines: u64, seed: u64) -> std::io::Result<()> {
    let mut rng = Rng(seed | 1);
    let mut buf = Vec::with_capacity(1 << 16);
    let mut t = 0u64; // seconds since Jan 1 00:00
    for _ in 0..lines {
        t += rng.below(3);
        let day = (t / 86_400) % 365;
        let (month, mday) = ((day / 31).min(11) as usize, day % 31 + 1);
        let host = rng.pick(HOSTS);
        let pid = 1000 + rng.below(60_000);
        let ip = format!(
            "{}.{}.{}.{}",
            1 + rng.below(223),
            rng.below(256),
            rng.below(256),
            1 + rng.below(254)
        );
        let port = 1024 + rng.below(64_000);
        let user = rng.pick(USERS);
        let _ = write!(
            buf,
            "{} {:>2} {:02}:{:02}:{:02} {host} ",
            MONTHS[month],
            mday,
            t / 3600 % 24,
            t / 60 % 60,
            t % 60
        );
        let _ = match rng.below(100) {
            0..=29 => {
                let inv = if rng.below(3) == 0 { "invalid user " } else { "" };
                writeln!(
                    buf,
                    "sshd[{pid}]: Failed password for {inv}{user} from {ip} port {port} ssh2"
                )
            }
            30..=39 => writeln!(buf, "sshd[{pid}]: Invalid user {user} from {ip} port {port}"),
            40..=49 => writeln!(
                buf,
                "sshd[{pid}]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user={user}"
            ),
            50..=59 => writeln!(
                buf,
                "sshd[{pid}]: Received disconnect from {ip} port {port}:11: Bye Bye [preauth]"
            ),
            60..=67 => writeln!(
                buf,
                "sshd[{pid}]: Connection closed by authenticating user {user} {ip} port {port} [preauth]"
            ),
            68..=72 => writeln!(
                buf,
                "sshd[{pid}]: Accepted publickey for {user} from {ip} port {port} ssh2: ED25519 SHA256:kzfjfps/WFgXAdNgzvHBLuI072Y+f+91rpinXJAAvkM"
            ),
            73..=77 => writeln!(
                buf,
                "sshd[{pid}]: pam_unix(sshd:session): session opened for user {user} by (uid=0)"
            ),
            78..=82 => writeln!(
                buf,
                "sudo[{pid}]:    {user} : TTY=pts/{} ; PWD=/home/{user} ; USER=root ; COMMAND=/usr/bin/systemctl restart nginx",
                rng.below(8)
            ),
            83..=87 => writeln!(
                buf,
                "systemd-logind[{pid}]: New session {} of user {user}.",
                rng.below(100_000)
            ),
            88..=93 => writeln!(buf, "CRON[{pid}]: (root) CMD (/usr/lib/php/sessionclean)"),
            _ => writeln!(
                buf,
                "kernel: [{}.{:06}] [UFW BLOCK] IN=eth0 OUT= SRC={ip} DST=10.0.0.5 LEN=44 PROTO=TCP SPT={port} DPT=23",
                t,
                rng.below(1_000_000)
            ),
        };
        if buf.len() >= 1 << 15 {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)
}

/// The events of `lines` generated lines from `seed`, parsed as syslog of 2026 (for benches
/// that start from normalized events). Lines the parser sets aside are left out.
pub fn parsed_events(lines: u64, seed: u64) -> Vec<crate::event::Event> {
    use crate::parse::Parser;
    use crate::parse::syslog::{SyslogOptions, SyslogParser};
    use crate::source::{Origin, RawRecord};
    let mut buf = Vec::new();
    // Writing to memory cannot fail.
    let _ = write_syslog(&mut buf, lines, seed);
    let mut parser = SyslogParser::new(SyslogOptions {
        year: Some(2026),
        now: Some(crate::event::Timestamp(0)),
        ..SyslogOptions::default()
    });
    let source = crate::event::Sym::from_static("generated");
    let mut events = Vec::with_capacity(usize::try_from(lines).unwrap_or(0));
    for (i, line) in buf.split(|&b| b == b'\n').filter(|l| !l.is_empty()).enumerate() {
        let rec = RawRecord {
            bytes: bytes::Bytes::copy_from_slice(line),
            origin: Origin { source: source.clone(), record: i as u64 + 1, offset: 0 },
            received: None,
        };
        let _ = parser.parse(&rec, &mut events);
    }
    events
}

/// Sends `args.lines` generated lines to `args.udp`, one datagram each, paced to `args.rate`
/// per second when set; returns how many were sent and how long it took.
pub fn send_udp(args: &crate::cli::GenerateArgs) -> std::io::Result<(u64, std::time::Duration)> {
    let Some(to) = args.udp else { return Ok((0, std::time::Duration::ZERO)) };
    if !to.ip().is_loopback() {
        // A load generator aimed elsewhere is a flood: this tool only tests this machine.
        return Err(std::io::Error::other("--udp sends to loopback addresses only"));
    }
    let mut text = Vec::new();
    write_syslog(&mut text, args.lines, args.seed)?;
    let socket = std::net::UdpSocket::bind(if to.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" })?;
    socket.connect(to)?;
    let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    let start = std::time::Instant::now();
    let mut sent = 0u64;
    // Paced in steps of a hundredth of a second's worth (at most 1000): ahead of schedule,
    // wait for it.
    let step = if args.rate > 0 { (args.rate / 100).clamp(1, 1000) } else { 1000 };
    for step in lines.chunks(usize::try_from(step).unwrap_or(1000)) {
        if args.rate > 0 {
            let due = std::time::Duration::from_secs_f64(sent as f64 / args.rate as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        let mut left = step;
        while !left.is_empty() {
            match send_some(&socket, &left[..left.len().min(SEND_BATCH)]) {
                Ok(n) => left = &left[n..],
                // The kernel's send buffer is full: a moment, then again.
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) if e.raw_os_error() == Some(105) => std::thread::yield_now(),
                Err(e) => return Err(e),
            }
        }
        sent += step.len() as u64;
    }
    Ok((sent, start.elapsed()))
}

/// Datagrams handed to the kernel per system call.
const SEND_BATCH: usize = 64;

/// Sends the first datagrams of `lines` on the connected `socket`, returning how many went
/// (at least one, or an error). On Linux in one `sendmmsg` call: a system call per datagram
/// caps one sending thread at about 160 k datagrams/s on this machine, below the 200 k/s the
/// UDP load test asks of the receiver.
#[cfg(target_os = "linux")]
fn send_some(socket: &std::net::UdpSocket, lines: &[&[u8]]) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let mut iov: Vec<libc::iovec> = lines
        .iter()
        .map(|l| libc::iovec { iov_base: l.as_ptr().cast_mut().cast(), iov_len: l.len() })
        .collect();
    let mut msgs: Vec<libc::mmsghdr> = iov
        .iter_mut()
        .map(|v| {
            // SAFETY: mmsghdr is plain data (pointers, lengths, flags); all-zero is its empty
            // value (no name, no control data).
            let mut m: libc::mmsghdr = unsafe { std::mem::zeroed() };
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
            m
        })
        .collect();
    let count = u32::try_from(msgs.len()).unwrap_or(u32::MAX);
    // SAFETY: `msgs` holds `count` headers, each pointing at one iovec of `iov`, each of which
    // points into `lines`; all of them outlive the call, and the kernel only reads them (and
    // writes `msg_len`).
    let n = unsafe { libc::sendmmsg(socket.as_raw_fd(), msgs.as_mut_ptr(), count, 0) };
    match usize::try_from(n) {
        Ok(0) | Err(_) => Err(std::io::Error::last_os_error()),
        Ok(n) => Ok(n),
    }
}

/// Sends the first datagram of `lines` (no batched send on this platform).
#[cfg(not(target_os = "linux"))]
fn send_some(socket: &std::net::UdpSocket, lines: &[&[u8]]) -> std::io::Result<usize> {
    socket.send(lines[0]).map(|_| 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_deterministic_and_line_counted() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        write_syslog(&mut a, 500, 7).unwrap_or_default();
        write_syslog(&mut b, 500, 7).unwrap_or_default();
        assert_eq!(a, b);
        assert_eq!(a.iter().filter(|&&c| c == b'\n').count(), 500);
        let mut c = Vec::new();
        write_syslog(&mut c, 500, 8).unwrap_or_default();
        assert_ne!(a, c);
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn udp_sends_every_line_as_one_datagram_in_order() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = receiver.local_addr().unwrap();
        receiver.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        // Read while sending: a default receive buffer holds a few hundred datagrams, and
        // the pacing sends 100 at a time.
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while got.len() < 1000 {
                let Ok(n) = receiver.recv(&mut buf) else { break };
                got.push(buf[..n].to_vec());
            }
            got
        });
        let args = crate::cli::GenerateArgs { lines: 1000, seed: 3, udp: Some(to), rate: 10_000 };
        let (sent, _) = send_udp(&args).unwrap();
        let got = reader.join().unwrap();
        let mut text = Vec::new();
        write_syslog(&mut text, 1000, 3).unwrap();
        let want: Vec<Vec<u8>> =
            text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect();
        assert_eq!(sent, 1000);
        assert_eq!(got, want);
    }
}
