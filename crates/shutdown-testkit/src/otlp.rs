//! An OTLP/HTTP receiver for tests: accepts `POST`s on a loopback port, answers 200, and hands each
//! request body (protobuf: span names and attribute strings appear in it as they are) to the test.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // test support: a panic is a failed test

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;

pub struct OtlpReceiver {
    /// `http://127.0.0.1:PORT/v1/traces`
    pub url: String,
    pub bodies: mpsc::Receiver<Vec<u8>>,
}

impl OtlpReceiver {
    pub fn start() -> OtlpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, bodies) = mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    let line = line.trim_end();
                    if line.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':')
                        && k.eq_ignore_ascii_case("content-length")
                    {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_ok() {
                    let _ = tx.send(body);
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        OtlpReceiver {
            url: format!("http://127.0.0.1:{port}/v1/traces"),
            bodies,
        }
    }
}
