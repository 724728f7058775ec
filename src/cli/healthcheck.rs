//! `cloudwarden healthcheck`: asks a running daemon's admin server whether
//! it is healthy, for container `HEALTHCHECK`s on images without curl.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

/// How long the whole check may take.
const TIMEOUT: Duration = Duration::from_secs(3);

/// GETs `path` from the admin server at `addr` (a listen address of
/// `0.0.0.0` or `::` is asked on loopback); exit 0 on 200, 1 otherwise.
pub fn check(addr: SocketAddr, path: &str) -> ExitCode {
    let addr = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    };
    match get(addr, path) {
        Ok((200, _)) => ExitCode::SUCCESS,
        Ok((status, body)) => {
            eprintln!(
                "cloudwarden: {path} on {addr} answered {status}: {}",
                body.trim()
            );
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("cloudwarden: cannot reach the admin server on {addr}: {err}");
            ExitCode::FAILURE
        }
    }
}

fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    // The answer is a few hundred bytes; more is not read.
    stream.take(64 * 1024).read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP response"))?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    Ok((status, body.to_owned()))
}
