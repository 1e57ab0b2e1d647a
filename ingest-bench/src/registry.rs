//! A schema registry for the benchmark's Avro runs: the clicks' schema as id 1 over Confluent's
//! REST API (`GET /schemas/ids/1`), which is all the sink asks of it. Plain HTTP/1.1 on a
//! thread per connection; anything else is answered 404.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

/// Starts serving (for the rest of the process); the registry's URL.
pub fn serve() -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let url = format!("http://{}", listener.local_addr()?);
    let body = serde_json::json!({ "schema": crate::avro::CLICK_SCHEMA }).to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let body = body.clone();
            std::thread::spawn(move || answer(stream, &body));
        }
    });
    Ok(url)
}

/// Answers the requests of one connection until the client closes it.
fn answer(mut stream: TcpStream, schema: &str) {
    let Ok(read) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read);
    loop {
        let mut request = String::new();
        if reader.read_line(&mut request).unwrap_or(0) == 0 {
            return;
        }
        // The headers, up to the blank line (the sink's GETs have no body).
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line.trim_end().is_empty() {
                break;
            }
        }
        let path = request.split_whitespace().nth(1).unwrap_or_default();
        let (status, body) = match path.split('?').next() {
            Some("/schemas/ids/1") => ("200 OK", schema),
            _ => (
                "404 Not Found",
                r#"{"error_code":40403,"message":"Schema not found"}"#,
            ),
        };
        let written = write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if written.is_err() {
            return;
        }
    }
}
