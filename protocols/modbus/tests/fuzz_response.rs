//! Fuzz target: any bytes a device sends back are an error or a reply of exactly the requested
//! size, never a panic. Runs as a test on stable (bolero), over its committed corpus in
//! `tests/__fuzz__/*/corpus` (real replies), then on random inputs for
//! `BOLERO_RANDOM_TEST_TIME_MS` (1 s by default, 60 s in `tests/run`); `cargo bolero test`
//! fuzzes it with coverage.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::request;
use shopfloor_modbus::driver::{Reply, read};
use shopfloor_modbus::plan::ReadRequest;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn any_reply_bytes_are_an_error_or_a_reply_of_the_right_size() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    // Input: area, count, a flag byte (bit 0: wrap the rest in a well-formed MBAP header),
    // then the bytes the device sends.
    bolero::check!().for_each(|input: &[u8]| {
        let [area, count, flags, body @ ..] = input else {
            return;
        };
        let echo_tid = &(flags & 1 == 1);
        let body = &body.to_vec();
        let req = request(*area, *count);
        rt.block_on(async {
            let (client, mut device) = tokio::io::duplex(4096);
            let mut ctx = tokio_modbus::client::tcp::attach_slave(client, tokio_modbus::Slave(1));
            let body = body.clone();
            let echo = *echo_tid;
            let device_task = async move {
                let mut head = [0u8; 12];
                if device.read_exact(&mut head).await.is_err() {
                    return;
                }
                // Half of the inputs are a well-formed MBAP header for this transaction
                // around a random PDU, to reach the PDU decoder and the length checks.
                let reply = if echo {
                    let len = u16::try_from(body.len() + 1).unwrap_or(u16::MAX);
                    let mut r = vec![head[0], head[1], 0, 0];
                    r.extend_from_slice(&len.to_be_bytes());
                    r.push(head[6]);
                    r.extend_from_slice(&body);
                    r
                } else {
                    body
                };
                let _ = device.write_all(&reply).await;
                // Keep the stream open until the client gave up.
                let _ = device.read(&mut [0u8; 1]).await;
            };
            let client_task = read(&mut ctx, &req, Duration::from_millis(20));
            let (result, ()) = tokio::join!(client_task, async {
                let _ = tokio::time::timeout(Duration::from_millis(50), device_task).await;
            });
            match result {
                Ok(Reply::Registers(r)) => assert_eq!(r.len(), usize::from(req.count)),
                Ok(Reply::Bits(b)) => assert!(b.len() >= usize::from(req.count)),
                Err(_) => {}
            }
        });
    });
}

/// Sends `pdu` (with a header for transaction `tid_delta` after the request's) in answer to
/// `req` and returns what the driver made of it.
fn answer(
    req: &ReadRequest,
    tid_delta: u16,
    pdu: &[u8],
) -> Result<Reply, shopfloor_modbus::driver::ReadError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, mut device) = tokio::io::duplex(4096);
        let mut ctx = tokio_modbus::client::tcp::attach_slave(client, tokio_modbus::Slave(1));
        let pdu = pdu.to_vec();
        let device_task = async move {
            let mut head = [0u8; 12];
            device.read_exact(&mut head).await.unwrap();
            let tid = u16::from_be_bytes([head[0], head[1]]).wrapping_add(tid_delta);
            let mut r = tid.to_be_bytes().to_vec();
            r.extend_from_slice(&[0, 0]);
            r.extend_from_slice(&(pdu.len() as u16 + 1).to_be_bytes());
            r.push(head[6]);
            r.extend_from_slice(&pdu);
            device.write_all(&r).await.unwrap();
            let _ = device.read(&mut [0u8; 1]).await;
        };
        let (result, _) = tokio::join!(
            read(&mut ctx, req, Duration::from_millis(200)),
            tokio::time::timeout(Duration::from_millis(300), device_task)
        );
        result
    })
}

#[test]
fn a_well_formed_reply_is_data() {
    let req = request(0, 1); // holding, 2 registers
    assert_eq!(
        answer(&req, 0, &[3, 4, 0x12, 0x34, 0xAB, 0xCD]).unwrap(),
        Reply::Registers(vec![0x1234, 0xABCD])
    );
}

#[test]
fn a_short_reply_is_an_error_not_data() {
    let req = request(0, 1); // holding, 2 registers
    let e = answer(&req, 0, &[3, 2, 0x12, 0x34]).unwrap_err();
    assert!(
        e.to_string().contains("reply has 1 values, expected 2"),
        "{e}"
    );
}

#[test]
fn a_reply_for_another_transaction_is_an_error_not_data() {
    let req = request(0, 1);
    let e = answer(&req, 1, &[3, 4, 0x12, 0x34, 0xAB, 0xCD]).unwrap_err();
    assert!(e.needs_reconnect(), "{e}");
}

#[test]
fn an_exception_is_reported_without_dropping_the_connection() {
    let req = request(0, 1);
    let e = answer(&req, 0, &[0x83, 0x02]).unwrap_err();
    assert!(!e.needs_reconnect(), "{e}");
    assert!(e.to_string().contains("exception"), "{e}");
}
