//! A loopback HTTP server for the fetch tests: it serves one body, honours `Range:
//! bytes=N-`, and can drop its first response halfway to test resuming, or refuse.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// How the test server answers.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Serving {
    Whole,
    /// The first response announces the whole length but stops halfway and hangs up.
    DropFirstHalfway,
    /// Every request is refused with `403 Forbidden` and an empty body.
    Forbidden,
}

/// A loopback HTTP server for `body`, answering at most `max_requests` GETs (with an
/// optional `Range: bytes=N-`); records each request's Range header.
pub(super) struct Server {
    pub url: String,
    pub ranges: Arc<Mutex<Vec<Option<String>>>>,
}

pub(super) fn serve(body: Vec<u8>, serving: Serving, max_requests: usize) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/archive.tar.gz", listener.local_addr().unwrap());
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&ranges);
    std::thread::spawn(move || {
        for (index, stream) in listener.incoming().take(max_requests).enumerate() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut range = None;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((name, value)) = line.split_once(':')
                    && name.eq_ignore_ascii_case("range")
                {
                    range = Some(value.trim().to_string());
                }
            }
            seen.lock().unwrap().push(range.clone());
            let start = range
                .as_deref()
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0);
            let len = body.len();
            let (head, payload) = if serving == Serving::Forbidden {
                ("HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n".to_string(), &[][..])
            } else if start == 0 {
                (format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n"), &body[..])
            } else if start < len {
                let head = format!(
                    "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{len}\r\nContent-Length: {}\r\n",
                    len - 1,
                    len - start
                );
                (head, &body[start..])
            } else {
                (format!("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\n"), &[][..])
            };
            let sent = if serving == Serving::DropFirstHalfway && index == 0 { &payload[..payload.len() / 2] } else { payload };
            let _ = stream.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes());
            let _ = stream.write_all(sent);
            let _ = stream.flush();
            // Dropping the stream closes the connection (mid-body for the dropped response).
        }
    });
    Server { url, ranges }
}
