//! A wrong body fails the run: against a fake storefront whose search answers products
//! without the word searched, the Browse scenario must report the check's failure in
//! goose's error table and exit non-zero, although every status is 200.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::thread;

const LISTING: &str = r#"{"items":[
  {"sku":"SKU-MUG","name":"Ceramic Mug","description":"Stoneware.","price_cents":1299,"currency":"USD","category":"kitchen"},
  {"sku":"SKU-PEN","name":"Fountain Pen","description":"Steel nib.","price_cents":2499,"currency":"USD","category":"stationery"}
 ],"total":2,"facets":{"kitchen":1,"stationery":1}}"#;
const WRONG_HITS: &str = r#"{"items":[
  {"sku":"SKU-CAP","name":"Baseball Cap","description":"Cotton.","price_cents":1499,"currency":"USD","category":"apparel"}
 ],"total":1,"facets":{"apparel":1}}"#;
const MUG: &str = r#"{"sku":"SKU-MUG","name":"Ceramic Mug","description":"Stoneware.","price_cents":1299,"currency":"USD","category":"kitchen"}"#;
const PEN: &str = r#"{"sku":"SKU-PEN","name":"Fountain Pen","description":"Steel nib.","price_cents":2499,"currency":"USD","category":"stationery"}"#;

/// One answer per connection (`Connection: close`), chosen by the request's path.
fn serve(mut stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut header = String::new();
    while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
        header.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("");
    let body = if path.contains("q=") {
        WRONG_HITS
    } else if path.starts_with("/v1/products/SKU-MUG") {
        MUG
    } else if path.starts_with("/v1/products/SKU-PEN") {
        PEN
    } else {
        LISTING
    };
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}

#[test]
fn a_failed_body_check_is_an_error_and_fails_the_run() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || serve(stream));
        }
    });
    let output = Command::new(env!("CARGO_BIN_EXE_load"))
        .args([
            "--host",
            &url,
            "--users",
            "1",
            "--run-time",
            "2s",
            "--scenarios",
            "browse",
        ])
        .env_remove("LOAD_ADMIN_EMAIL")
        .env_remove("LOAD_ADMIN_PASSWORD")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("without that word"),
        "the check's text in goose's errors:\n{stdout}"
    );
    assert!(stdout.contains("FAIL"), "{stdout}");
    // The listing and the product pages were right: only searches failed.
    assert!(!stdout.contains("browse: list: "), "{stdout}");
}
